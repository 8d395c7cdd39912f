"""aiortc bridge (DRAFT — the media core fills this in)."""


def configure_ice(host_addresses: list[str]) -> None:
    pass
