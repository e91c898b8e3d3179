"""``python -m export.curve LOG PNG``: draw a training log's validation and test gain against compute hours, and
the share of dead ReLU channels (the network's health, `export.health`) on a second axis.

Each leg of the run (a start line in the log) is shaded by the hardware it ran on, so that CPU hours and GPU
minutes are told apart. Given several logs, it draws their validation gains against training hours side by
side instead, one line a run (arms compared at equal compute, as ``export.compare --hours`` tabulates them).

    python -m export.curve runs/main/log.txt docs/training-curve.png
    python -m export.curve runs/width/*/log.txt docs/width-curves.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

START = re.compile(r"start step (\d+): (\{.*\}) on (.*)$")
FIGURE = re.compile(r"step (\d+) ([\d.]+) h (validation|test) gain ([+-][\d.]+) dB")
DEAD = re.compile(r"health: dead channels ([\d.]+)%")


def read_log(path: Path) -> tuple[list[dict], dict[str, list[tuple[float, float, int]]]]:
    """(legs, figures): each leg's starting hour and hardware; for validation and test, (hours, gain, step); for
    dead, (hours, percent of dead channels, step) from the validation lines that report health."""
    legs, figures = [], {"validation": [], "test": [], "dead": []}
    for line in Path(path).read_text().splitlines():
        if start := START.search(line):
            recipe = json.loads(start.group(2))
            legs.append({"hours": recipe.get("hours", 0.0), "hardware": start.group(3),
                         "device": recipe.get("device", "?")})
        elif figure := FIGURE.search(line):
            step, hours, name, gain = figure.groups()
            figures[name].append((float(hours), float(gain), int(step)))
            if name == "validation" and (dead := DEAD.search(line)):
                figures["dead"].append((float(hours), float(dead.group(1)), int(step)))
    return legs, figures


def draw(log: Path, png: Path) -> dict[str, list]:
    """Write the curve as a PNG; returns the figures drawn."""
    legs, figures = read_log(log)
    fig, ax = _axes()
    for name, style in (("validation", "o-"), ("test", "s--")):
        if figures[name]:
            hours, gains, _ = zip(*figures[name])
            ax.plot(hours, gains, style, label=f"{name} set", markersize=4)
    end = max([h for h, _, _ in figures["validation"] + figures["test"]], default=0.0)
    colours = iter(("#e8f0fe", "#fde8e8", "#e8fde9", "#fdf6e3") * 8)
    shade: dict[str, str] = {}
    for leg, following in zip(legs, legs[1:] + [None]):  # each leg shaded by its hardware, labelled once
        label = None if leg["hardware"] in shade else f"{leg['device']}: {leg['hardware']}"
        shade.setdefault(leg["hardware"], next(colours))
        ax.axvspan(leg["hours"], following["hours"] if following else max(end, leg["hours"]),
                   color=shade[leg["hardware"]], zorder=0, label=label)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("training compute, hours")
    ax.set_ylabel("PSNR gain over the blurry input, dB")
    ax.set_title("STRCNN+DTB main run: mean gain on clips below 40 dB input")
    handles, labels = ax.get_legend_handles_labels()
    if figures["dead"]:
        health = ax.twinx()
        hours, dead, _ = zip(*figures["dead"])
        handles += health.plot(hours, dead, "x:", color="tab:red", markersize=4, label="dead ReLU channels")
        labels.append("dead ReLU channels")
        health.set_ylabel("dead ReLU channels, %", color="tab:red")
        health.set_ylim(0, max(100.0, max(dead)))
    ax.legend(handles, labels, fontsize=7, loc="best")
    _save(fig, png)
    return figures


def draw_runs(logs: list[Path], png: Path) -> dict[str, list]:
    """Write the validation gain of each run against its training hours as a PNG, one line a run named by its
    folder; returns each run's (hours, gain, step) points."""
    fig, ax = _axes()
    drawn = {}
    for log in logs:
        points = drawn[Path(log).parent.name] = sorted(read_log(log)[1]["validation"])
        if points:
            hours, gains, _ = zip(*points)
            ax.plot(hours, gains, "o-", label=Path(log).parent.name, markersize=4)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("training compute, hours (evaluation left out)")
    ax.set_ylabel("validation PSNR gain over the blurry input, dB")
    ax.set_title("Runs side by side: mean validation gain on clips below 40 dB input")
    ax.legend(fontsize=7, loc="best")
    _save(fig, png)
    return drawn


def _axes():
    """A figure of the curves' size, drawn without a display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(8, 4.5), dpi=110)


def _save(fig, png: Path) -> None:
    """Grid the figure's first axes, write it as a PNG and free it."""
    from matplotlib import pyplot as plt

    fig.axes[0].grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", type=Path, nargs="+", metavar="LOG ... PNG",
                        help="training logs (OUT/log.txt), then the picture to write")
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give one or more logs and then the picture to write")
    *logs, png = args.paths
    if len(logs) > 1:
        drawn = draw_runs(logs, png)
        print(f"wrote {png}: " + ", ".join(f"{run} {len(points)} points" for run, points in drawn.items()))
        return
    figures = draw(logs[0], png)
    print(f"wrote {png}: {len(figures['validation'])} validation and {len(figures['test'])} test points")


if __name__ == "__main__":
    main()
