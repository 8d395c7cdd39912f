"""Where rooms are recorded and which process serves them.

`registry` is the interface (rooms, nodes, rate limits), with an in-memory implementation
that keeps its rooms in the state directory (`memory_registry`, `room_snapshot`) and a Redis
one shared by every node (`redis_registry`); `node` is this process as a node (heartbeat,
placement, routing); `workers` runs several nodes on one machine (`--workers`).
"""
