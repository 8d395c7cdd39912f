"""Kaamos side by side with Janus VideoRoom and a naive aiortc relay.

    python -m bench quick                 # about 1-2 minutes: R = 1, 2
    python -m bench full                  # R = 1, 2, 4, 6, 8, ... until loss or saturation
    python -m bench quick --systems kaamos,kaamos-old@/tmp/old-checkout --profile
    python -m bench soak --cycles 1000    # join/leave churn: memory, fds, tasks, leaks
    python -m bench loaded --minutes 5    # four clients on a machine busy loops take

Each run writes results.json, results.md and results.png to --out. The run re-executes
itself in a private network namespace (`unshare -n`, only `lo`) unless it is already in
one; every ICE candidate is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import ROOT, loaded, report, soak
from .clip import describe, ensure_clips
from .measure import MAX_LOSS_PCT, Settings, measure
from .servers import make_system

FULL_ROOMS = [1, 2, 4, 6, 8, 10, 12, 16, 20]
QUICK_ROOMS = [1, 2]


def only_loopback() -> bool:
    return os.listdir("/sys/class/net") == ["lo"]


def reexec_in_netns() -> None:
    if only_loopback() or os.environ.get("KAAMOS_BENCH_NETNS"):
        return
    command = " ".join(f"'{a}'" for a in [sys.executable, "-m", "bench", *sys.argv[1:]])
    inner = f"ip link set lo up && cd '{ROOT}' && exec {command}"
    env = dict(os.environ, KAAMOS_BENCH_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "--", "sh", "-c", inner], env)


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 2**20
    return (
        f"{os.cpu_count()} vCPU ({model}), {memory} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def sweep(
    args: argparse.Namespace, settings: Settings, workdir: Path
) -> list[dict[str, Any]]:
    """Raise R for every system together (side by side in time: the machine's noise hits
    them alike); a system drops out once its loss passes 1 % or a side saturates."""
    active = list(args.systems)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.max_minutes * 60
    for rooms in args.rooms:
        for repeat in range(args.repeat):
            for name in list(active):
                if time.monotonic() > deadline:
                    print(f"stopping: --max-minutes {args.max_minutes} reached", flush=True)
                    return results
                system = make_system(name, workdir, args.kaamos_workers)
                try:
                    result = await measure(system, rooms, settings, workdir)
                except Exception as exc:  # noqa: BLE001 - one failing system must not lose the others
                    result = {"system": name, "rooms": rooms, "error": repr(exc)}
                result["repeat"] = repeat
                results.append(result)
                print(report.row(result), flush=True)
                if args.mode == "full" and name in active and _stops(result):
                    active.remove(name)
        if not active:
            break
    return results


def _stops(result: dict[str, Any]) -> bool:
    return (
        "error" in result or bool(result["saturated"]) or (result["loss_pct"] or 0) > MAX_LOSS_PCT
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("quick", "full", "soak", "loaded"))
    parser.add_argument(
        "--systems",
        default="kaamos,janus,relay",
        type=lambda s: s.split(","),
        help="comma-separated: kaamos, janus, relay, LABEL@/other/kaamos/checkout",
    )
    parser.add_argument(
        "--rooms",
        type=lambda s: [int(x) for x in s.split(",")],
        help="room counts (default: quick 1,2; full 1,2,4,6,8,...)",
    )
    parser.add_argument("--warmup", type=float, help="seconds before the window")
    parser.add_argument("--window", type=float, help="seconds measured")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--kaamos-workers", type=int, default=1, help="kaamos-sfu serve --workers")
    parser.add_argument("--profile", action="store_true", help="py-spy the Kaamos server")
    parser.add_argument("--max-minutes", type=float, default=30, help="hard limit for the run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--cycles", type=int, default=1000, help="soak: join/leave cycles")
    parser.add_argument("--minutes", type=float, default=5, help="loaded: minutes under load")
    args = parser.parse_args()
    if args.mode in ("soak", "loaded"):
        reexec_in_netns()
        sys.exit(run_soak(args) if args.mode == "soak" else run_loaded(args))
    quick = args.mode == "quick"
    args.rooms = args.rooms or (QUICK_ROOMS if quick else FULL_ROOMS)
    reexec_in_netns()
    with tempfile.TemporaryDirectory(prefix="kaamos-bench-") as tmp:
        workdir = Path(tmp)
        settings = Settings(
            warmup=args.warmup if args.warmup is not None else (2 if quick else 5),
            window=args.window if args.window is not None else (8 if quick else 20),
            clips=ensure_clips(Path(tempfile.gettempdir()) / "kaamos-bench-media"),
            client_processes=args.client_processes,
            profile=args.profile,
        )
        print(report.HEADER, flush=True)
        results = asyncio.run(sweep(args, settings, workdir))
        args.out.mkdir(parents=True, exist_ok=True)
        for log in workdir.glob("*.log"):  # keep the servers' and clients' logs with the run
            (args.out / "logs").mkdir(exist_ok=True)
            (args.out / "logs" / log.name).write_bytes(log.read_bytes())
        for profile in workdir.glob("profile-*.txt"):
            (args.out / profile.name).write_bytes(profile.read_bytes())
        run = {
            "mode": args.mode,
            "machine": machine(),
            "clip": describe(settings.clips),
            "warmup_s": settings.warmup,
            "window_s": settings.window,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": results,
            "ratios": report.ratios(results),
        }
        (args.out / "results.json").write_text(json.dumps(run, indent=1) + "\n")
        (args.out / "results.md").write_text(report.markdown(results, run["machine"]))
        report.plot(results, args.out / "results.png")
    print()
    print(report.markdown(results, run["machine"]))
    print(f"written: {args.out}/results.json, results.md, results.png")


def run_soak(args: argparse.Namespace) -> int:
    """The churn soak (bench/soak.py); exit status 1 if the server kept anything."""
    with tempfile.TemporaryDirectory(prefix="kaamos-soak-") as tmp:
        every = max(1, args.cycles // 10)
        result = asyncio.run(soak.soak(args.cycles, every, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(soak.to_json(result) + "\n")
    text = soak.report(result)
    (args.out / "soak.md").write_text(text)
    print(text)
    print(f"written: {args.out}/soak.json, soak.md")
    return 1 if result.problems() else 0


def run_loaded(args: argparse.Namespace) -> int:
    """Four clients under busy loops (bench/loaded.py); exit status 1 on a removal."""
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kaamos-loaded-") as tmp:
        result = asyncio.run(loaded.loaded(args.minutes * 60, Path(tmp)))
        (args.out / "loaded-server.log").write_bytes((Path(tmp) / "kaamos.log").read_bytes())
    text = result.report()
    (args.out / "loaded.md").write_text(text)
    print(text)
    print(f"written: {args.out}/loaded.md, loaded-server.log")
    return 1 if result.problems() else 0


if __name__ == "__main__":
    main()
