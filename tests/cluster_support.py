"""SFU nodes as real processes (`python -m kaamos_sfu serve`) sharing a test redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from ports import free_port
from redis_support import RedisServer, stop_process
from timing import eventually, scaled

from kaamos_sfu.cluster.redis_registry import RedisRegistry
from kaamos_sfu.cluster.registry import NodeInfo
from kaamos_sfu.web.auth import issue_token

API_SECRET = "cluster-tests-secret-0123456789abcdef"
HEARTBEAT_SECONDS = 0.5
NODE_TTL_SECONDS = 2.0
START_TIMEOUT = 30.0  # seconds (scaled) for the nodes to answer and register


def cluster_env(redis: RedisServer, state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a node: loopback ICE, short heartbeats, a known API secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAAMOS_")}
    env.update(
        KAAMOS_SERVER_HOST="127.0.0.1",
        KAAMOS_SERVER_STATE_DIR=str(state_dir),
        KAAMOS_AUTH_API_SECRET=API_SECRET,
        KAAMOS_ICE_HOST_ADDRESSES="127.0.0.1",
        KAAMOS_CLUSTER_REDIS_URL=redis.url,
        KAAMOS_CLUSTER_NODE_URL="http://127.0.0.1:{port}",
        KAAMOS_CLUSTER_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        KAAMOS_CLUSTER_NODE_TTL_SECONDS=str(NODE_TTL_SECONDS),
        KAAMOS_CLUSTER_REDIS_TIMEOUT_SECONDS="1",
        KAAMOS_LOG_LEVEL="info",
    )
    env.update(extra)
    return env


class NodeProcess:
    """`python -m kaamos_sfu serve` as node `name`, on a free port or the `port` given (that
    of a node killed before: a restart)."""

    def __init__(
        self, name: str, redis: RedisServer, directory: Path, port: int | None = None, **env: str
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{name}.log"
        env = cluster_env(redis, directory / "state", KAAMOS_CLUSTER_NODE_ID=name, **env)
        with open(self.log_path, "wb") as log:
            # cwd: a directory without config.toml, so only the environment configures it.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kaamos_sfu", "serve", "--port", str(self.port)],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(scaled(10))

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Cluster:
    """N nodes on loopback sharing one Redis, and an HTTP session to talk to them."""

    def __init__(self, redis: RedisServer, directory: Path, count: int, **env: str) -> None:
        self.redis = redis
        self.nodes = [NodeProcess(f"node{i}", redis, directory, **env) for i in range(count)]
        self.http = aiohttp.ClientSession()
        self.token = issue_token(API_SECRET, "cluster-tests")
        self.view = RedisRegistry(redis.url, ttl_seconds=3600, timeout_seconds=1)

    def node(self, name: str) -> NodeProcess:
        return next(n for n in self.nodes if n.name == name)

    async def wait_ready(self) -> None:
        """Until every node answers /health and is in the node set."""
        names = {n.name for n in self.nodes if n.process.poll() is None}

        async def ready() -> bool:
            for node in self.nodes:
                if node.process.poll() is not None and node.name in names:
                    raise AssertionError(f"{node.name} exited:\n{node.log()}")
            return {n.node_id for n in await self.live_nodes()} == names

        def logs() -> str:
            return "the nodes\n" + "\n".join(f"--- {n.name}\n{n.log()}" for n in self.nodes)

        await eventually(ready, START_TIMEOUT, logs, poll=0.1)

    async def live_nodes(self) -> list[NodeInfo]:
        return await self.view.nodes()

    async def create_room(self, node: NodeProcess) -> str:
        response = await self.http.post(
            f"{node.url}/api/rooms/create", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status == 201, await response.text()
        return str((await response.json())["room_id"])

    async def get_room(self, node: NodeProcess, room_id: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{node.url}/api/rooms/{room_id}") as response:
            return response.status, await response.json()

    async def holder(self, room_id: str) -> NodeProcess:
        record = await self.view.get(room_id)
        assert record is not None and record.node_id is not None
        return self.node(record.node_id)

    async def close(self) -> None:
        for node in self.nodes:
            node.stop()
        await self.http.close()
        await self.view.close()
