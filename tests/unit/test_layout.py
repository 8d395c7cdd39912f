"""The tree reads as the architecture (docs/architecture.md): modules of one job each, and
layers that import only what is below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kaamos_sfu"
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    "path",
    [*modules(), *sorted((ROOT / "static").glob("*.js"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_is_over_400_lines(path: Path) -> None:
    """Every module of kaamos_sfu/ and static/ stays one job: at most 400 lines."""
    assert len(path.read_text().splitlines()) <= MAX_LINES


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# (package or module, what it must not import, unless within the last): the layers of
# docs/architecture.md.
RULES = [
    (
        "kaamos_sfu/forwarding",
        ("kaamos_sfu", "aiortc", "aioice", "aiohttp"),
        "kaamos_sfu.forwarding",
    ),
    (
        "kaamos_sfu/room",
        (
            "aiortc",
            "aioice",
            "aiohttp",
            "kaamos_sfu.webrtc",
            "kaamos_sfu.signaling",
            "kaamos_sfu.web",
            "kaamos_sfu.rtc_bridge",
        ),
        None,
    ),
    ("kaamos_sfu/protocol.py", ("kaamos_sfu", "aiortc", "aiohttp"), None),
    ("kaamos_sfu/webrtc", ("aiohttp", "kaamos_sfu.signaling", "kaamos_sfu.web"), None),
]


@pytest.mark.parametrize(("where", "forbidden", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_layers_import_only_what_is_below_them(
    where: str, forbidden: tuple[str, ...], allowed: str | None
) -> None:
    """The forwarding core imports nothing of the project; the room core knows no WebRTC,
    HTTP or WebSocket; the WebRTC participant knows no signaling or HTTP."""
    target = ROOT / where
    paths = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in paths
        for name in imported(path)
        if any(within(name, f) for f in forbidden) and not (allowed and within(name, allowed))
    }
    assert not wrong
