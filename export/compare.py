"""``python -m export.compare LOG...``: training runs side by side, judged by their last three validation
evaluations (one evaluation swings too much to decide anything): the mean gain and its range, by category, the
worst clip, how many of the three hold do-no-harm, the silent channels, and the test gain (reported, never
used to choose). A run with a moving average of its weights (``--ema``) gets a second row for its trained
weights, from the same evaluations.

    python -m export.compare runs/arms/*/log.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

LINE = re.compile(r"step (\d+) [\d.]+ h (validation|validation \(training weights\)|test) gain ([+-][\d.]+) dB")
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
            step, kind, gain = match.groups()
            silent, worst = SILENT.search(line), WORST.search(line)
            found.setdefault(kind, {})[int(step)] = {
                "gain": float(gain), "worst": float(worst.group(1)) if worst else None,
                "no_harm": "do-no-harm holds" in line, "silent": float(silent.group(1)) if silent else None,
                **{k: float(v) for k, v in CATEGORY.findall(line)}}
    return found


def judge(log: Path) -> list[dict]:
    """A log's rows: the mean of its last three validation evaluations (and of the trained weights' where the
    run averages them), with the test gain at the same steps (the test set and health are measured on the
    evaluated weights only)."""
    found = evaluations(log)
    steps = sorted(found.get("validation", {}))[-LAST:]
    if len(steps) < LAST:
        raise ValueError(f"{log}: {len(steps)} validation evaluations; judging a run needs its last {LAST}")
    rows = []
    for kind, label in (("validation", ""), ("validation (training weights)", " (trained weights)")):
        if not all(step in found.get(kind, {}) for step in steps):  # e.g. averaging began after these steps
            continue
        figures = [found[kind][s] for s in steps]
        test = [found.get("test", {}).get(s, {}).get("gain") for s in steps] if not label else [None]
        rows.append({"run": Path(log).parent.name + label, "steps": steps,
                     **{k: sum(f[k] for f in figures) / LAST for k in ("gain", "mild", "moderate", "strong", "worst")},
                     "low": min(f["gain"] for f in figures), "high": max(f["gain"] for f in figures),
                     "no_harm": sum(f["no_harm"] for f in figures),
                     "silent": None if label else figures[-1]["silent"],  # the health is the evaluated weights'
                     "test": None if None in test else sum(test) / LAST})
    return rows


def table(rows: list[dict]) -> str:
    """Rows as a Markdown table, best validation gain first."""
    out = ["| run | steps judged | validation gain, mean (range) | mild | moderate | strong | worst clip | "
           "do-no-harm holds | silent at the end | test gain, mean |", "|" + "---|" * 10]
    for r in sorted(rows, key=lambda r: -r["gain"]):
        silent = "?" if r["silent"] is None else f"{r['silent']:.1f}%"
        test = "-" if r["test"] is None else f"{r['test']:+.3f} dB"
        out.append(f"| {r['run']} | {', '.join(f'{s:,}' for s in r['steps'])} | {r['gain']:+.3f} dB "
                   f"({r['low']:+.3f} to {r['high']:+.3f}) | {r['mild']:+.3f} | {r['moderate']:+.3f} | "
                   f"{r['strong']:+.3f} | {r['worst']:+.3f} | {r['no_harm']} of {LAST} | {silent} | {test} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", type=Path, nargs="+", help="training logs (OUT/log.txt)")
    args = parser.parse_args(argv)
    rows = []
    for log in args.logs:
        try:
            rows += judge(log)
        except (OSError, ValueError) as e:  # a run too young to judge, or no log: the others still compare
            print(f"left out: {e}", file=sys.stderr)
    if not rows:
        raise SystemExit("no run to compare")
    print(table(rows))


if __name__ == "__main__":
    main()
