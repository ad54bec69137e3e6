#!/usr/bin/env python3
"""Plots `cdrchain bench dev|localnet --sweep --json FILE` figures: committed throughput and
submit-to-final latency (p50, p99) against offered load. Usage:

    scripts/bench-plot.sh OUT.png SWEEP.json [SWEEP.json ...]

(scripts/bench-plot.sh installs matplotlib in a virtual environment first.)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def points(figures):
    """(offered, committed, p50, p99, p99 after acknowledgement or None) per paced step; the
    unbounded step is left out."""
    out = []
    for step in figures.get("steps", [figures]):
        offered = step["offered_cdrs_per_s"]
        committed = step["committed_cdrs_per_s"]
        if offered == "unbounded":
            continue
        after_ack = step.get("latency_after_ack_ms_p99")
        out.append((offered, committed, step["latency_ms_p50"], step["latency_ms_p99"], after_ack))
    return sorted(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, files = sys.argv[1], sys.argv[2:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for path in files:
        with open(path) as f:
            figures = json.load(f)
        suite = figures.get("suite", path)
        pts = points(figures)
        if not pts:
            continue
        offered = [p[0] for p in pts]
        left.plot(offered, [p[1] for p in pts], "o-", label=f"{suite}: committed")
        ceiling = figures.get("committed_cdrs_per_s")
        if isinstance(ceiling, (int, float)):
            left.axhline(ceiling, linestyle=":", linewidth=1, color=left.lines[-1].get_color(),
                         label=f"{suite}: unbounded ceiling {ceiling:,.0f}/s")
        right.plot(offered, [p[2] for p in pts], "o-", label=f"{suite}: p50")
        right.plot(offered, [p[3] for p in pts], "s--", label=f"{suite}: p99 from the first attempt")
        if all(p[4] is not None for p in pts):
            right.plot(offered, [p[4] for p in pts], "^:", label=f"{suite}: p99 after acknowledgement")
    top = max([max(left.get_xlim()), max(left.get_ylim())])
    left.plot([0, top], [0, top], color="grey", linewidth=0.8, label="committed = offered")
    left.set_xlabel("offered CDRs/s")
    left.set_ylabel("committed CDRs/s")
    left.set_title("throughput")
    left.legend(fontsize=8)
    right.set_xlabel("offered CDRs/s")
    right.set_ylabel("submit-to-final latency, ms")
    right.set_title("latency")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
