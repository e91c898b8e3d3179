"""Frames as people have them (HxWx3 uint8 or float32, RGB or BGR) to and from the model's planar float32."""

from __future__ import annotations

import numpy as np

COLORS = ("rgb", "bgr")
DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def check_color(color: str) -> str:
    """Normalise a colour-order name, rejecting anything but RGB and BGR."""
    if not isinstance(color, str) or color.lower() not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr' (OpenCV's order), got {color!r}")
    return color.lower()


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
    by reflection at the bottom and right up to multiples of `multiple`."""
    x = frames.astype(np.float32) * np.float32(1 / 255) if frames.dtype == np.uint8 else frames
    if color == "bgr":
        x = x[..., ::-1]
    x = x.transpose(0, 3, 1, 2)
    height, width = x.shape[2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    return np.ascontiguousarray(x, dtype=np.float32)


def from_planar(sharp: np.ndarray, height: int, width: int, color: str, dtype: np.dtype) -> np.ndarray:
    """float32 [N, 3, H', W'] RGB in [0, 1] -> [N, height, width, 3] in `color` order and `dtype` (the caller's)."""
    x = sharp[:, :, :height, :width].transpose(0, 2, 3, 1)
    if color == "bgr":
        x = x[..., ::-1]
    if dtype == np.uint8:
        return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x, dtype=np.float32)
