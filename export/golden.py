"""``python -m export.golden DIR``: a golden sequence for runtimes in other languages.

Writes a tiny random-weight model with a guard (``tiny.onnx`` + sidecar), a few small blurry frames as PNG, and
what the Python runtime returns for them as raw little-endian float32 ([T, H, W, 3] RGB in [0, 1]), described by
``golden.json``: at full strength (``expected``) and at a partial one (``partial``). A runtime that streams the
PNGs (as uint8 / 255) through the model, repeating the first and last frame at the ends, must reproduce each to
1e-4.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from strcnn_sdk import Deblurrer, UntrainedModelWarning

from .data import Sources, render_clip
from .model import STRCNN
from .onnx import export

PARTIAL = 0.4  # the strength of the second expected sequence


def write_golden(folder: Path, frames: int = 5, size: tuple[int, int] = (23, 34)) -> dict:
    """Write the golden model, inputs and expected outputs into `folder`; returns golden.json's content."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # a ramp wide enough that every frame's correction is scaled by a factor inside (0, 1)
    export(STRCNN("dtb", m=1, width=8, guard={"low": 0.0, "high": 10.0}), folder / "tiny.onnx", trained=False)
    blurry, _ = render_clip(np.random.default_rng(0), Sources.wheel(("coffee",)), frames, size)
    names = [f"frame_{i:02d}.png" for i in range(frames)]
    for name, rgb in zip(names, blurry):
        cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        deblurrer = Deblurrer(folder / "tiny.onnx")
    inputs = blurry.astype(np.float32) / 255
    np.stack(list(deblurrer.stream(inputs))).astype("<f4").tofile(folder / "expected.f32")
    deblurrer.strength = PARTIAL
    np.stack(list(deblurrer.stream(inputs))).astype("<f4").tofile(folder / "expected_partial.f32")
    manifest = {"model": "tiny.onnx", "frames": names, "height": size[0], "width": size[1],
                "expected": "expected.f32", "partial": {"strength": PARTIAL, "expected": "expected_partial.f32"},
                "layout": "T,H,W,3 float32 little-endian RGB in [0,1]", "tolerance": 1e-4}
    (folder / "golden.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    manifest = write_golden(args.folder)
    print(f"wrote {len(manifest['frames'])} golden frames and tiny.onnx to {args.folder}")


if __name__ == "__main__":
    main()
