"""The side-by-side benchmark: Kaamos, Janus VideoRoom and a naive aiortc relay driven by
the same load clients (`python -m bench --help`, docs/benchmarks.md)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The load clients publish the tests' pre-encoded clips (tests/media.py).
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
