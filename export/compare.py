"""``python -m export.compare LOG...``: training runs side by side, judged by their last three validation
evaluations (one evaluation swings too much to decide anything; ``--last N`` for arms evaluated once at their end):
the mean gain and its range, by category, the worst clip, how many of them hold do-no-harm, the silent channels,
and the gains on the natural photographs, the test set and real GoPro pairs (reported, never used to choose). A
run with a moving average of its weights (``--ema``) gets a second row for its trained weights, from the same
evaluations.

With ``--hours STEP`` runs compare at equal training time instead, as runs of different cost per step must (a
narrower network, another device): each run's validation gain every STEP hours, interpolated between its
evaluations (training hours leave evaluation time out).

    python -m export.compare runs/arms/*/log.txt
    python -m export.compare --hours 0.25 runs/width/*/log.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

LINE = re.compile(r"step (\d+) ([\d.]+) h (validation|validation \(training weights\)|natural|test|gopro) gain "
                  r"([+-][\d.]+) dB")
CATEGORY = re.compile(r"\b(mild|moderate|strong) ([+-][\d.]+)")
WORST = re.compile(r"worst clip ([+-][\d.]+)")
SILENT = re.compile(r"silent ([\d.]+)%")
LAST = 3


def evaluations(log: Path) -> dict[str, dict[int, dict]]:
    """Every evaluation line of a log: {kind: {step: figures}}, kind being validation, validation (training
    weights) or test; a later line of the same step replaces an earlier one (a resumed run)."""
    found: dict[str, dict[int, dict]] = {}
    for line in Path(log).read_text().splitlines():
        if match := LINE.search(line):
            step, hours, kind, gain = match.groups()
            silent, worst = SILENT.search(line), WORST.search(line)
            found.setdefault(kind, {})[int(step)] = {
                "hours": float(hours), "gain": float(gain), "worst": float(worst.group(1)) if worst else None,
                "no_harm": "do-no-harm holds" in line, "silent": float(silent.group(1)) if silent else None,
                **{k: float(v) for k, v in CATEGORY.findall(line)}}
    return found


REPORTED = ("natural", "test", "gopro")  # sets reported beside validation, never used to choose


def judge(log: Path, last: int = LAST) -> list[dict]:
    """A log's rows: the mean of its `last` validation evaluations (and of the trained weights' where the run
    averages them), with the reported sets' gains at the same steps (those and health are measured on the
    evaluated weights only)."""
    found = evaluations(log)
    steps = sorted(found.get("validation", {}))[-last:]
    if len(steps) < last:
        raise ValueError(f"{log}: {len(steps)} validation evaluations; judging a run needs its last {last}")
    rows = []
    for kind, label in (("validation", ""), ("validation (training weights)", " (trained weights)")):
        if not all(step in found.get(kind, {}) for step in steps):  # e.g. averaging began after these steps
            continue
        figures = [found[kind][s] for s in steps]
        reported = {name: [found.get(name, {}).get(s, {}).get("gain") for s in steps] if not label else [None]
                    for name in REPORTED}
        rows.append({"run": Path(log).parent.name + label, "steps": steps,
                     **{k: sum(f[k] for f in figures) / last for k in ("gain", "mild", "moderate", "strong", "worst")},
                     "low": min(f["gain"] for f in figures), "high": max(f["gain"] for f in figures),
                     "no_harm": sum(f["no_harm"] for f in figures), "judged": last,
                     "silent": None if label else figures[-1]["silent"],  # the health is the evaluated weights'
                     **{name: None if None in gains else sum(gains) / last for name, gains in reported.items()}})
    return rows


def at_hours(log: Path, marks: list[float]) -> list[float | None]:
    """A run's validation gain at each mark of training hours, interpolated linearly between the evaluations on
    either side of it (None before the first evaluation or after the last)."""
    points = sorted((f["hours"], f["gain"]) for f in evaluations(log).get("validation", {}).values())
    gains: list[float | None] = []
    for mark in marks:
        pairs = [(a, b) for a, b in zip(points, points[1:]) if a[0] <= mark <= b[0]]
        if not pairs:
            gains.append(points[0][1] if points and points[0][0] == mark else None)
            continue
        (h0, g0), (h1, g1) = pairs[0]
        gains.append(g0 if h1 == h0 else g0 + (g1 - g0) * (mark - h0) / (h1 - h0))
    return gains


def hours_table(logs: list[Path], every: float) -> str:
    """Runs' validation gains at equal training hours as a Markdown table: a column every `every` hours up to the
    longest run's last evaluation, the steps each run took to its last evaluation beside them."""
    last = {log: max(evaluations(log).get("validation", {}).items(), key=lambda kv: kv[1]["hours"], default=None)
            for log in logs}
    longest = max((v[1]["hours"] for v in last.values() if v), default=0.0)
    marks = [every * k for k in range(1, int(longest / every + 1e-9) + 1)]
    if not marks:
        raise ValueError(f"no run has a validation evaluation after {every:g} training hours")
    out = ["| run | " + " | ".join(f"{m:g} h" for m in marks) + " | last evaluation |", "|" + "---|" * (len(marks) + 2)]
    for log in logs:
        gains = " | ".join("-" if g is None else f"{g:+.3f}" for g in at_hours(log, marks))
        end = "-" if last[log] is None else f"step {last[log][0]:,}, {last[log][1]['hours']:.2f} h"
        out.append(f"| {Path(log).parent.name} | {gains} | {end} |")
    return "\n".join(out)


def table(rows: list[dict]) -> str:
    """Rows as a Markdown table, best validation gain first."""
    out = ["| run | steps judged | validation gain, mean (range) | mild | moderate | strong | worst clip | "
           "do-no-harm holds | silent at the end | natural gain | test gain | GoPro gain |", "|" + "---|" * 12]
    for r in sorted(rows, key=lambda r: -r["gain"]):
        silent = "?" if r["silent"] is None else f"{r['silent']:.1f}%"
        reported = " | ".join("-" if r[name] is None else f"{r[name]:+.3f} dB" for name in REPORTED)
        out.append(f"| {r['run']} | {', '.join(f'{s:,}' for s in r['steps'])} | {r['gain']:+.3f} dB "
                   f"({r['low']:+.3f} to {r['high']:+.3f}) | {r['mild']:+.3f} | {r['moderate']:+.3f} | "
                   f"{r['strong']:+.3f} | {r['worst']:+.3f} | {r['no_harm']} of {r['judged']} | {silent} | "
                   f"{reported} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", type=Path, nargs="+", help="training logs (OUT/log.txt)")
    parser.add_argument("--hours", type=float, metavar="STEP", help="compare validation gains at equal training "
                        "hours, every STEP hours")
    parser.add_argument("--last", type=int, default=LAST, metavar="N", help="judge each run by its last N "
                        f"evaluations (default {LAST})")
    args = parser.parse_args(argv)
    if args.last < 1:
        raise SystemExit("--last takes a count of evaluations, 1 or more")
    if args.hours is not None:
        if args.hours <= 0:
            raise SystemExit("--hours takes a positive step, such as 0.25")
        try:
            print(hours_table(args.logs, args.hours))
        except (OSError, ValueError) as e:
            raise SystemExit(str(e)) from None
        return
    rows = []
    for log in args.logs:
        try:
            rows += judge(log, args.last)
        except (OSError, ValueError) as e:  # a run too young to judge, or no log: the others still compare
            print(f"left out: {e}", file=sys.stderr)
    if not rows:
        raise SystemExit("no run to compare")
    print(table(rows))


if __name__ == "__main__":
    main()
