"""Frames as people have them (HxWx3 uint8 or float32, RGB or BGR) to and from the model's planar float32."""

from __future__ import annotations

import numbers

import cv2
import numpy as np

COLORS = ("rgb", "bgr")
DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def check_color(color: str) -> str:
    """Normalise a colour-order name, rejecting anything but RGB and BGR."""
    if not isinstance(color, str) or color.lower() not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr' (OpenCV's order), got {color!r}")
    return color.lower()


def check_strength(strength: object) -> float:
    """A strength of correction (0: the input, 1: the model's output) as a float, rejecting anything else."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number from 0 (the input unchanged) to 1 (the model's full "
                         f"correction), got {strength!r}")
    return float(strength)


def check_frames(frames: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """Validate an array of frames [..., H, W, 3] with the given ndim; return it as a numpy array."""
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(frames).__name__}")
    if frames.dtype not in DTYPES:
        raise TypeError(f"{what} has dtype {frames.dtype}; use uint8 (0-255) or float32 (0-1), "
                        f"e.g. frame.astype(np.float32)")
    if frames.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions (..., H, W, 3), got shape {frames.shape}")
    if frames.shape[-1] != 3:
        raise ValueError(f"{what} must have 3 colour channels last (H, W, 3), got shape {frames.shape}")
    if frames.size == 0:
        raise ValueError(f"{what} is empty: shape {frames.shape}")
    if frames.dtype == np.float32:
        lo, hi = frames.min(), frames.max()  # NaN propagates into both
        if not np.isfinite(lo) or not np.isfinite(hi):
            raise ValueError(f"{what} contains NaN or infinite values")
        if lo < 0 or hi > 1:
            raise ValueError(f"float32 {what} must lie in [0, 1], got values from {lo:g} to {hi:g}; "
                             f"divide 0-255 values by 255")
    return frames


def to_planar(frames: np.ndarray, color: str, multiple: int) -> np.ndarray:
    """[N, H, W, 3] uint8/float32 in `color` order -> float32 [N, 3, H', W'] RGB in [0, 1], with H and W padded
    by reflection at the bottom and right up to multiples of `multiple`. OpenCV does the work: one pass, SIMD."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = -height % multiple, -width % multiple
    images = [cv2.copyMakeBorder(f, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101) if pad_h or pad_w else f
              for f in frames]
    scale = 1 / 255 if frames.dtype == np.uint8 else 1.0
    return cv2.dnn.blobFromImages(images, scalefactor=scale, swapRB=color == "bgr")


def from_planar(sharp: np.ndarray, height: int, width: int, color: str, dtype: np.dtype) -> np.ndarray:
    """float32 [N, 3, H', W'] RGB in [0, 1] -> [N, height, width, 3] in `color` order and `dtype` (the caller's),
    uint8 rounded to nearest."""
    order = (2, 1, 0) if color == "bgr" else (0, 1, 2)
    out = []
    for planes in sharp[:, :, :height, :width]:
        channels = [planes[c] for c in order]
        if dtype == np.uint8:
            channels = [cv2.convertScaleAbs(c, alpha=255) for c in channels]  # values are >= 0: abs is a no-op
        out.append(cv2.merge(channels))
    return out[0][None] if len(out) == 1 else np.stack(out)
