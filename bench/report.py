"""Turn a run's results into a Markdown table, ratios to Kaamos, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HEADER = (
    "| system | rooms ×4 | fwd pkt/s | SFU CPU % of a core | **µs / fwd pkt** | loss % | RTX | "
    "RSS / peer MB | join→1st pkt ms (med / p95 / max) | join→all tracks ms (med / p95 / max) | "
    "latency p50 / p99 ms | clients CPU % | machine busy % (before) | saturated |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _triple(values: dict[str, float | None]) -> str:
    return " / ".join("–" if v is None else f"{v:.0f}" for v in values.values())


def _number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r['system']} | {r['rooms']} | failed: {r['error']} |" + " |" * 11
    return (
        f"| {r['system']} | {r['rooms']} | {r['forwarded_pps']:.0f} | "
        f"{r['sfu_cpu_pct_of_core']:.1f} | **{_number(r['us_per_fwd_pkt'])}** | "
        f"{_number(r['loss_pct'], 2)} | {r['rtx_pkts']} | {_number(r['rss_per_peer_mb'], 2)} | "
        f"{_triple(r['join_to_first_packet_ms'])} | {_triple(r['join_to_all_tracks_ms'])} | "
        f"{_number(r['latency_p50_ms'], 2)} / {_number(r['latency_p99_ms'], 2)} | "
        f"{r['client_cpu_pct_of_core']:.0f} | {r['machine_busy_pct']:.0f} "
        f"({r['machine_busy_before_pct']:.0f}) | "
        f"{r['saturated'] or ''} |"
    )


def ratios(results: list[dict[str, Any]], base: str = "kaamos") -> list[dict[str, Any]]:
    """Each other system's figures divided by Kaamos's at the same R and repetition."""
    ours = {
        (r["rooms"], r.get("repeat", 0)): r
        for r in results
        if r["system"] == base and "error" not in r
    }
    out = []
    for r in results:
        mine = ours.get((r["rooms"], r.get("repeat", 0)))
        if r["system"] == base or mine is None or "error" in r:
            continue
        out.append(
            {
                "system": r["system"],
                "rooms": r["rooms"],
                "repeat": r.get("repeat", 0),
                "cpu_per_packet": _ratio(r["us_per_fwd_pkt"], mine["us_per_fwd_pkt"]),
                "join_first_median": _ratio(
                    r["join_to_first_packet_ms"]["median"],
                    mine["join_to_first_packet_ms"]["median"],
                ),
                "join_all_median": _ratio(
                    r["join_to_all_tracks_ms"]["median"], mine["join_to_all_tracks_ms"]["median"]
                ),
            }
        )
    return out


def _ratio(theirs: float | None, ours: float | None) -> float | None:
    return round(theirs / ours, 2) if theirs and ours else None


def markdown(results: list[dict[str, Any]], machine: str) -> str:
    lines = [f"Machine: {machine}", "", HEADER, *(row(r) for r in results), ""]
    pairs = ratios(results)
    if pairs:
        lines += [
            "Ratios to Kaamos at the same R (theirs ÷ ours; above 1: Kaamos is better):",
            "",
            "| system | rooms | CPU / fwd pkt | join→1st pkt median | join→all tracks median |",
            "|---|---|---|---|---|",
            *(
                f"| {p['system']} | {p['rooms']} | {_number(p['cpu_per_packet'], 2)} | "
                f"{_number(p['join_first_median'], 2)} | {_number(p['join_all_median'], 2)} |"
                for p in pairs
            ),
            "",
        ]
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """CPU per forwarded packet, and loss, against R: one colour per system. Dashed: the
    packets due but not delivered in the window (queued or dropped; not for the relay,
    which re-encodes). A cross marks a saturated run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu, loss) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["system"] for r in results):
        mine = sorted(
            (r for r in results if r["system"] == name and "error" not in r),
            key=lambda r: r["rooms"],
        )
        rooms = [r["rooms"] for r in mine]
        (line,) = cpu.plot(rooms, [r["us_per_fwd_pkt"] for r in mine], "o-", label=name)
        color = line.get_color()
        loss.plot(rooms, [r["loss_pct"] or 0 for r in mine], "o-", color=color, label=name)
        if name != "relay":
            behind = [max(0.0, 100 * (1 - (r["expected_ratio"] or 1))) for r in mine]
            loss.plot(rooms, behind, "--", color=color, label=f"{name}: not delivered")
        for r in mine:
            if r["saturated"]:
                cpu.plot(r["rooms"], r["us_per_fwd_pkt"], "kx", markersize=10)
    cpu.set_yscale("log")  # the relay is 30-70 times the SFUs
    cpu.set(xlabel="rooms of 4", ylabel="SFU CPU µs per forwarded packet (log)")
    cpu.set_title("x: saturated", fontsize=9)
    loss.set(xlabel="rooms of 4", ylabel="% of packets", ylim=(0, None))
    loss.set_title("solid: lost (receiver stats); dashed: not delivered in time", fontsize=9)
    for axes in (cpu, loss):
        axes.grid(alpha=0.3, which="both")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
