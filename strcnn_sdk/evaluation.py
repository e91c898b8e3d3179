"""`strcnn eval`: a model's PSNR and SSIM against sharp frames, next to the blurry input's, per clip."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .deblurrer import Deblurrer
from .metrics import clip_row
from .video import MediaError, read_image


def find_clips(root: Path) -> list[tuple[str, list[Path], list[Path]]]:
    """(name, blurry frames, sharp frames) for a GoPro-layout folder (SEQ/blur/*.png, SEQ/sharp/*.png) or a flat
    folder of NAME_blur1.png / NAME_sharp1.png pairs (each pair a one-frame clip)."""
    root = Path(root)
    if not root.is_dir():
        raise MediaError(f"{root}: not a folder")
    clips = []
    for seq in sorted(p for p in root.iterdir() if (p / "blur").is_dir()):
        blur, sharp = sorted((seq / "blur").glob("*.png")), sorted((seq / "sharp").glob("*.png"))
        if not blur or [p.name for p in blur] != [p.name for p in sharp]:
            raise MediaError(f"{seq}: blur/ and sharp/ must hold the same non-empty list of .png frames")
        clips.append((seq.name, blur, sharp))
    for blur in sorted(root.glob("*_blur1.png")):
        sharp = blur.with_name(blur.name.replace("_blur1.png", "_sharp1.png"))
        if not sharp.is_file():
            raise MediaError(f"{blur}: its sharp pair {sharp.name} is missing")
        clips.append((blur.name[: -len("_blur1.png")], [blur], [sharp]))
    if not clips:
        raise MediaError(f"{root}: no clips (SEQ/blur + SEQ/sharp folders, or NAME_blur1.png + NAME_sharp1.png)")
    return clips


def evaluate_clips(clips: Iterable[tuple[str, np.ndarray, np.ndarray]], deblurrer: Deblurrer,
                   ssim: bool = True) -> list[dict]:
    """One row per clip (name, blurry, sharp uint8 [T, H, W, 3]; see `clip_row`), each clip a new stream."""
    rows = []
    for name, blurry, sharp in clips:
        deblurrer.reset()
        rows.append(clip_row(name, blurry, np.stack(list(deblurrer.stream(blurry))), sharp, ssim))
    return rows


def read_clips(root: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """A folder's clips (see `find_clips`) as (name, blurry, sharp uint8 [T, H, W, 3]), one at a time."""
    for name, blur, sharp in find_clips(root):
        yield name, np.stack([read_image(p) for p in blur]), np.stack([read_image(p) for p in sharp])


def evaluate_folder(root: Path, deblurrer: Deblurrer, ssim: bool = True) -> list[dict]:
    """`evaluate_clips` over a folder's clips (see `find_clips`)."""
    return evaluate_clips(read_clips(root), deblurrer, ssim)
