"""``python -m export.fit_guard CHECKPOINT``: fit the guard's ramp (`export.guard`) for a checkpoint, on training
clips only, and write the guarded checkpoint that `python -m export` exports.

The network runs once over clips rendered from the gathered *training* photographs with the evaluation
categories (still, mild, moderate, strong); for every frame it keeps the motion measure of its input and the
8-bit output's error at a grid of correction factors. Every ramp (low, high) is then scored from that table with
the project's own figures (`strcnn_sdk.metrics.summarize`), and the one with the highest gain whose do-no-harm
rule holds with a margin wins. The validation set is tabled the same way and the figures on it, with and without
the guard, are printed beside the training ones: they report, they never fit.

    python -m export.fit_guard runs/main/last.pt --photos data/photos --out guarded.pt
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from strcnn_sdk.metrics import CLIP_LOSS_DB, SHARP_PSNR_DB, clip_psnr, describe, summarize

from .data import VALIDATION_KINDS, Sources, eval_clips, validation_clips
from .guard import GuardConfig, luma_kernel, motion_measure
from .onnx import load_checkpoint, save_checkpoint
from .train import run_clip

SEED = 20261205  # the fitting clips' seed: neither the test set's nor the validation set's
FACTORS = np.linspace(0.0, 1.0, 21)  # the correction factors each frame's error is tabled at
RAMP_MAX = 3.0  # the ramp's ends are searched from 0 to this motion measure
MARGIN_DB = 0.05  # fitting demands this much room on the do-no-harm lines of the training clips (`_safe`)


def frame_table(model, clips: Iterable, device: torch.device, precision: str) -> dict[str, np.ndarray]:
    """For each frame of each clip (name, blurry, sharp): its clip's index, the motion measure of its input, and
    the squared error of the 8-bit output at each of `FACTORS`; plus each clip's blurry PSNR (mean over frames), as
    `clip_row` has it, and name."""
    clip_index, measures, errors, blurry_db, names = [], [], [], [], []
    m = model.m
    kernel = luma_kernel(m).to(device)
    model.eval()
    with torch.no_grad():
        for i, (name, blurry, sharp) in enumerate(clips):
            names.append(name)
            padded, out = run_clip(model, blurry, device, precision)
            t = len(blurry)
            x = padded[m:m + t]
            correction = out - x
            target = torch.from_numpy(sharp).permute(0, 3, 1, 2).float().to(device)
            for g in FACTORS:
                y = ((x + float(g) * correction).clamp(0, 1) * 255).round()
                errors.append(((y - target) ** 2).mean((1, 2, 3), dtype=torch.float64).cpu().numpy())
            windows = torch.cat([padded[k:k + t] for k in range(2 * m + 1)], 1)  # [t, 3(2m+1), H, W]
            measures.append(motion_measure(windows, kernel).cpu().numpy())
            blurry_db.append(clip_psnr(blurry, sharp))
            clip_index.append(np.full(t, i))
    model.train()
    per_factor = np.stack(errors).reshape(len(names), len(FACTORS), -1).transpose(0, 2, 1).reshape(-1, len(FACTORS))
    return {"clip": np.concatenate(clip_index), "measure": np.concatenate(measures), "mse": per_factor,
            "blurry_db": np.array(blurry_db), "names": np.array(names)}


def training_clips(photos: Path, clips: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`clips` evaluation clips (name, blurry, sharp) from each training photograph, their kinds taken in turn from
    the validation set's, rendered one photograph at a time so that only one is held in memory."""
    sources = Sources.folder(photos, "train")
    for j in range(len(sources)):
        one = Sources([sources.names[j]], [sources.paths[j]])
        kinds = VALIDATION_KINDS[j % len(VALIDATION_KINDS):] + VALIDATION_KINDS[:j % len(VALIDATION_KINDS)]
        yield from eval_clips(one, SEED + j, clips, kinds)
        Sources.image.cache_clear()


def guarded_summary(table: dict[str, np.ndarray], config: GuardConfig | None) -> dict:
    """`summarize` of the clips of `table` with the guard `config` (None: no guard), from the tabled errors."""
    if config is None:
        factor = np.ones(len(table["clip"]))
    else:
        factor = np.clip((table["measure"] - config.low) / (config.high - config.low), 0.0, 1.0)
    position = factor * (len(FACTORS) - 1)
    below = np.minimum(position.astype(int), len(FACTORS) - 2)
    share = position - below
    rows = np.arange(len(factor))
    mse = (1 - share) * table["mse"][rows, below] + share * table["mse"][rows, below + 1]
    frame_db = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))
    frames = np.bincount(table["clip"])
    model_db = np.bincount(table["clip"], frame_db) / frames
    return summarize([{"clip": str(name), "frames": int(n), "psnr_blurry": float(b), "psnr_model": float(m)}
                      for name, n, b, m in zip(table["names"], frames, table["blurry_db"], model_db)])


def _safe(summary: dict, margin: float) -> bool:
    """Do-no-harm with `margin` dB of room on the worst clip's and the near-sharp clips' lines (the mild clips'
    line, no loss on average, is where a closed guard sits: it gets none)."""
    worst = summary["worst"][1] if summary["worst"] else 0.0
    sharp = summary["sharp_psnr"] if summary["sharp_psnr"] is not None else float("inf")
    return summary["no_harm"] and worst >= -CLIP_LOSS_DB + margin and sharp >= SHARP_PSNR_DB + margin


def fit(table: dict[str, np.ndarray], margin: float = MARGIN_DB, step: float = 0.02) -> tuple[GuardConfig, dict] | None:
    """The ramp with the highest gain on `table` whose do-no-harm holds with `margin`, or None where none does."""
    best = None
    grid = np.round(np.arange(0.0, RAMP_MAX + step / 2, step), 6)
    for low in grid[:-1]:
        for high in grid[grid > low]:
            config = GuardConfig(float(low), float(high))
            summary = guarded_summary(table, config)
            if _safe(summary, margin) and (best is None or summary["gain"] > best[1]["gain"] + 1e-9):
                best = config, summary
    return best


def _return_large_buffers() -> None:
    """Have glibc map every buffer of a megabyte or more on its own, so that freeing it returns it: rendering and
    the network's activations interleaved otherwise fragment the heap, which grew past 16 GB for width 64."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its allocator is its own
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.fit_guard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a .pt holding 'config' and 'state_dict'")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"),
                        help="the gathered photographs (export.photos): their training split fits the guard and "
                             "their validation split reports")
    parser.add_argument("--clips", type=int, default=4,
                        help="clips per training photograph, their kinds taken in turn from the validation set's")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="the network's arithmetic")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, help="write the checkpoint with the fitted guard here")
    parser.add_argument("--table", type=Path, help="a .npz to keep the training clips' table in (the validation "
                                                   "clips' beside it), and reuse")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _return_large_buffers()
    device = torch.device("cpu")
    model = load_checkpoint(args.checkpoint)
    if model.guard is not None:
        raise SystemExit(f"{args.checkpoint} already has a guard; fit on the network without one")

    def tabled(clips, path: Path | None) -> dict:
        if path is not None and path.is_file():
            return dict(np.load(path))
        table = frame_table(model, clips, device, args.precision)
        if path is not None:
            np.savez(path, **table)
        return table

    train = tabled(list(training_clips(args.photos, args.clips)), args.table)
    validation = tabled(validation_clips(args.photos), args.table and args.table.with_suffix(".validation.npz"))
    print(f"{args.checkpoint}: {len(train['names'])} training clips, {len(validation['names'])} validation clips, "
          f"{args.precision}")
    print(f"  no guard: training {describe(guarded_summary(train, None))}")
    print(f"            validation {describe(guarded_summary(validation, None))}")
    found = fit(train)
    if found is None:
        raise SystemExit("no ramp keeps do-no-harm on the training clips")
    config, summary = found
    print(f"  guard low {config.low:.2f} high {config.high:.2f}: training {describe(summary)}")
    print(f"            validation {describe(guarded_summary(validation, config))}")
    if args.out:
        guarded = type(model)(**model.config(), guard=dataclasses.asdict(config))
        guarded.load_state_dict(model.state_dict())
        save_checkpoint(guarded, args.out)
        print(f"wrote {args.out}: {json.dumps(config.describe())}")


if __name__ == "__main__":
    main()
