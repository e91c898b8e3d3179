"""Quality figures as the project reports them: PSNR on 8-bit RGB (peak 255, whole frame, no border crop) and
SSIM as scikit-image computes it on RGB."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images or clips of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM between two uint8 HxWx3 images (scikit-image's structural_similarity over the RGB channels)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise ImportError("SSIM needs scikit-image: pip install 'strcnn-sdk[eval]'") from None
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def clip_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the per-frame PSNR of two uint8 clips [T, H, W, 3] (the usual video convention)."""
    return float(np.mean([psnr(x, y) for x, y in zip(a, b)]))
