"""The HTTP edge: the room API for the bot (`api`, with /health and its OpenAPI document),
the call page (`pages`), /metrics (`metrics`, `metrics_route`), bearer tokens (`auth`), and
what the server believes about a request behind a proxy (`edge`)."""
