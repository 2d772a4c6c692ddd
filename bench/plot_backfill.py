"""The plot of bench/backfill.sh: the writers' p99 latency per second over time, without and
with a backfill, the backfill's window shaded; one panel per load.

    python plot_backfill.py P99_CSV OUT_PNG TITLE [LOAD=LO:HI ...]

P99_CSV has lines load,round,kind,second,p99_ms,transactions (kind is "with" or "without";
second counts from the start of that pgbench run). Each LOAD=LO:HI is a load's backfill window,
in seconds from the start of its run with the backfill (the run without has the same offsets).
bench/backfill.sh runs it with matplotlib from a venv of its own.
"""
import csv
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, FuncFormatter  # noqa: E402


def minor_label(y, _pos):
    """Labels 2x and 5x a power of ten on a log axis (the major ticks label the powers)."""
    return "%g" % y if ("%.0e" % y)[0] in "25" else ""


def main():
    src, out, title = sys.argv[1:4]
    windows = {}
    for arg in sys.argv[4:]:
        load, span = arg.rsplit("=", 1)
        lo, hi = span.split(":")
        windows[load] = (float(lo), float(hi))

    series = OrderedDict()
    with open(src, newline="") as f:
        for load, _round, kind, second, p99, _n in csv.reader(f):
            series.setdefault(load, {"without": ([], []), "with": ([], [])})
            xs, ys = series[load][kind]
            xs.append(int(second) + 0.5)
            ys.append(float(p99))
    if not series:
        sys.exit("no data in " + src)

    fig, axes = plt.subplots(len(series), 1, figsize=(10, 3.2 * len(series)), squeeze=False)
    for ax, (load, runs) in zip(axes[:, 0], series.items()):
        if load in windows:
            lo, hi = windows[load]
            ax.axvspan(lo, hi, color="tab:orange", alpha=0.15, label="backfill window")
        for kind, style in (("without", dict(color="tab:blue", lw=1.2)), ("with", dict(color="tab:red", lw=1.2))):
            xs, ys = runs[kind]
            ax.plot(xs, ys, drawstyle="steps-mid", label=kind + " backfill", **style)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        lo, hi = ax.get_ylim()
        # Under a decade or so a log axis has one labelled tick or none: label the minor ticks too.
        ax.yaxis.set_minor_formatter(FuncFormatter(minor_label) if hi / lo < 30 else FormatStrFormatter(""))
        ax.set_title("load: " + load, fontsize=10)
        ax.set_ylabel("writers' p99 per second (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds since pgbench started")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("plot written to " + out)


if __name__ == "__main__":
    main()
