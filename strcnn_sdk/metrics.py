"""Quality figures as the project reports them: PSNR on 8-bit RGB (peak 255, whole frame, no border crop) and
SSIM as scikit-image computes it on RGB."""

from __future__ import annotations

import math

import numpy as np

SHARP_PSNR_DB = 40.0  # do no harm: an input that is already sharp comes out at least this close to itself
CATEGORIES = ("still", "mild", "moderate", "strong")  # clip-name prefixes of the project's evaluation sets


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


def clip_row(name: str, blurry: np.ndarray, out: np.ndarray, sharp: np.ndarray, with_ssim: bool = False) -> dict:
    """One clip's figures: PSNR (mean over frames, 8-bit RGB, whole frame) and optionally SSIM of the blurry input
    and of the model's output against the sharp frames."""
    if out.shape != sharp.shape or blurry.shape != sharp.shape:
        raise ValueError(f"{name}: blurry frames are {blurry.shape[1:3]} but sharp ones {sharp.shape[1:3]}")
    row = {"clip": name, "frames": len(out), "psnr_blurry": clip_psnr(blurry, sharp), "psnr_model": clip_psnr(out, sharp)}
    if with_ssim:
        row["ssim_blurry"] = float(np.mean([ssim(b, s) for b, s in zip(blurry, sharp)]))
        row["ssim_model"] = float(np.mean([ssim(o, s) for o, s in zip(out, sharp)]))
    return row


def summarize(rows: list[dict]) -> dict:
    """The figures a model is judged by, from per-clip rows.

    - ``mean``: every figure averaged over the clips whose input is blurred (not equal to its sharp frames);
      ``gain`` is its model PSNR minus blurry PSNR, the headline figure.
    - ``sharp_psnr``: over clips whose input already equals the sharp frames, the mean PSNR of the output against
      that input (None without such clips).
    - ``categories``: the mean gain of each category that names clips by prefix (``mild_...``, ``strong_...``).
    - ``no_harm``: sharp input comes out at `SHARP_PSNR_DB` or more, and mild clips are not worse on average.
    """
    blurred = [r for r in rows if math.isfinite(r["psnr_blurry"])]
    sharp = [r["psnr_model"] for r in rows if not math.isfinite(r["psnr_blurry"])]
    keys = [k for k in rows[0] if k not in ("clip", "frames")] if rows else []
    mean = {k: float(np.mean([r[k] for r in blurred])) for k in keys} if blurred else {}
    gains: dict[str, list[float]] = {}
    for r in blurred:
        kind = r["clip"].split("_")[0]
        if kind in CATEGORIES:
            gains.setdefault(kind, []).append(r["psnr_model"] - r["psnr_blurry"])
    categories = {k: float(np.mean(v)) for k, v in sorted(gains.items(), key=lambda kv: CATEGORIES.index(kv[0]))}
    sharp_psnr = float(np.mean(sharp)) if sharp else None
    return {"mean": mean, "gain": mean["psnr_model"] - mean["psnr_blurry"] if mean else None,
            "blurred_clips": len(blurred), "blurred_frames": sum(r["frames"] for r in blurred),
            "sharp_clips": len(sharp), "sharp_psnr": sharp_psnr,
            "categories": categories,
            "no_harm": (sharp_psnr is None or sharp_psnr >= SHARP_PSNR_DB) and categories.get("mild", 0.0) >= 0.0}


def describe(summary: dict) -> str:
    """A summary in one line, as the training log and `strcnn eval` print it."""
    parts = [f"gain {summary['gain']:+.3f} dB over {summary['blurred_clips']} blurred clips"
             if summary["gain"] is not None else "no blurred clips"]
    parts += [f"{k} {v:+.3f}" for k, v in summary["categories"].items()]
    if summary["sharp_psnr"] is not None:
        parts.append(f"sharp input kept at {summary['sharp_psnr']:.2f} dB")
    parts.append("do-no-harm " + ("holds" if summary["no_harm"] else "FAILS"))
    return ", ".join(parts)
