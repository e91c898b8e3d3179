"""Quality figures as the project reports them: PSNR on 8-bit RGB (peak 255, whole frame, no border crop), SSIM as
scikit-image computes it on RGB, and the do-no-harm rule that `strcnn eval`, the training log and checkpoint
selection share (`summarize`)."""

from __future__ import annotations

import numpy as np

SHARP_PSNR_DB = 40.0  # an input this close to its target is near-sharp, and its output must stay this close
CLIP_LOSS_DB = 0.5  # do no harm: no other clip may lose more than this
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
    """The figures a model is judged by, from per-clip rows, and the one do-no-harm rule of the project.

    - A clip is *near-sharp* when its input scores `SHARP_PSNR_DB` or more against its target (still clips, whose
      input is their target, included). ``sharp_clips`` counts them; ``sharp_psnr`` is the lowest of their outputs'
      PSNR (None without such clips).
    - ``mean``: every figure averaged over the remaining clips; ``gain`` is its model PSNR minus blurry PSNR, the
      headline figure. ``categories``: the mean gain of each category that names clips by prefix (``mild_...``).
      ``worst``: the (clip, gain) of the remaining clip that gains least.
    - ``no_harm``: every near-sharp clip's output scores `SHARP_PSNR_DB` or more, the mild clips do not lose on
      average, and no remaining clip loses more than `CLIP_LOSS_DB`; ``harm`` lists what breaks it.
    """
    sharp = [r for r in rows if r["psnr_blurry"] >= SHARP_PSNR_DB]
    blurred = [r for r in rows if r["psnr_blurry"] < SHARP_PSNR_DB]
    keys = [k for k in rows[0] if k not in ("clip", "frames")] if rows else []
    mean = {k: float(np.mean([r[k] for r in blurred])) for k in keys} if blurred else {}
    gains: dict[str, list[float]] = {}
    for r in blurred:
        kind = r["clip"].split("_")[0]
        if kind in CATEGORIES:
            gains.setdefault(kind, []).append(r["psnr_model"] - r["psnr_blurry"])
    categories = {k: float(np.mean(v)) for k, v in sorted(gains.items(), key=lambda kv: CATEGORIES.index(kv[0]))}
    worst = min(((r["clip"], r["psnr_model"] - r["psnr_blurry"]) for r in blurred), key=lambda w: w[1], default=None)
    harm = [f"{r['clip']} (near-sharp) comes out at {r['psnr_model']:.2f} dB" for r in sharp
            if r["psnr_model"] < SHARP_PSNR_DB]
    if categories.get("mild", 0.0) < 0.0:
        harm.append(f"mild clips lose {-categories['mild']:.3f} dB on average")
    harm += [f"{r['clip']} loses {r['psnr_blurry'] - r['psnr_model']:.3f} dB" for r in blurred
             if r["psnr_model"] - r["psnr_blurry"] < -CLIP_LOSS_DB]
    return {"mean": mean, "gain": mean["psnr_model"] - mean["psnr_blurry"] if mean else None,
            "blurred_clips": len(blurred), "blurred_frames": sum(r["frames"] for r in blurred),
            "sharp_clips": len(sharp), "sharp_psnr": min((r["psnr_model"] for r in sharp), default=None),
            "categories": categories, "worst": worst, "harm": harm, "no_harm": not harm}


def harm_figures(summary: dict) -> dict[str, float | None]:
    """The do-no-harm rule's three figures of a `summarize` result, each better when higher: the mild clips' mean
    gain, the worst clip's gain and the lowest near-sharp output (None where the set has no such clips)."""
    return {"mild": summary["categories"].get("mild"), "worst clip": summary["worst"] and summary["worst"][1],
            "near-sharp": summary["sharp_psnr"]}


def ships(candidate: dict, shipped: dict) -> tuple[bool, str]:
    """The shipping rule, on `summarize` results of the same set (validation, fp32): a candidate ships when its
    gain beats the shipped model's and either the do-no-harm rule holds or it is no worse than the shipped model
    on each of the rule's figures (`harm_figures`, each compared up to its line: 0 dB, -0.5 dB, 40 dB), so that a
    better model may replace one that also fails the rule, keeping its QualityWarning. Returns the verdict and why, in words."""
    gain, bar = candidate["gain"], shipped["gain"]
    if gain is None or bar is None:
        return False, "no clips below the near-sharp line to compare gains on"
    if gain <= bar:
        return False, f"does not ship: gain {gain:+.3f} dB is not above the shipped model's {bar:+.3f} dB"
    if candidate["no_harm"]:
        return True, f"ships: gain {gain:+.3f} dB beats the shipped model's {bar:+.3f} dB and do-no-harm holds"
    ours, theirs = harm_figures(candidate), harm_figures(shipped)
    # a figure on the safe side of its line is as good as any other there
    line = {"mild": 0.0, "worst clip": -CLIP_LOSS_DB, "near-sharp": SHARP_PSNR_DB}
    worse = [f"{k} {ours[k]:+.3f} against {theirs[k]:+.3f}" for k in ours
             if ours[k] is not None and theirs[k] is not None and min(ours[k], line[k]) < min(theirs[k], line[k])]
    if worse:
        return False, f"does not ship: gain {gain:+.3f} dB beats {bar:+.3f} dB, but do-no-harm fails and it is " \
                      f"worse than the shipped model on {', '.join(worse)}"
    return True, f"ships with its QualityWarning: gain {gain:+.3f} dB beats the shipped model's {bar:+.3f} dB and " \
                 "it is no worse on any do-no-harm figure, though the rule fails"


def describe(summary: dict) -> str:
    """A summary in one line, as the training log and `strcnn eval` print it."""
    parts = [f"gain {summary['gain']:+.3f} dB over {summary['blurred_clips']} clips below {SHARP_PSNR_DB:.0f} dB"
             if summary["gain"] is not None else f"no clips below {SHARP_PSNR_DB:.0f} dB"]
    parts += [f"{k} {v:+.3f}" for k, v in summary["categories"].items()]
    if summary["worst"] is not None:
        parts.append(f"worst clip {summary['worst'][1]:+.3f}")
    if summary["sharp_psnr"] is not None:
        parts.append(f"{summary['sharp_clips']} near-sharp clips kept at {summary['sharp_psnr']:.2f} dB or more")
    harm = summary["harm"]
    verdict = "do-no-harm holds" if not harm else \
        f"do-no-harm FAILS: {'; '.join(harm[:3])}{f'; and {len(harm) - 3} more' if len(harm) > 3 else ''}"
    return ", ".join(parts + [verdict])


def quality_fields(summary: dict) -> dict:
    """A summary as a sidecar keeps it (``quality.test``): the gain, by category, the worst clip, the lowest
    near-sharp output, and the do-no-harm verdict with what breaks it."""
    return {"gain_db": None if summary["gain"] is None else round(summary["gain"], 3),
            "clips": summary["blurred_clips"],
            "categories_db": {k: round(v, 3) for k, v in summary["categories"].items()},
            "worst_clip_db": None if summary["worst"] is None else round(summary["worst"][1], 3),
            "near_sharp_clips": summary["sharp_clips"],
            "near_sharp_min_db": None if summary["sharp_psnr"] is None else round(summary["sharp_psnr"], 2),
            "no_harm": summary["no_harm"], "harm": summary["harm"]}


def describe_quality(quality: dict | None) -> str:
    """A sidecar's ``quality`` in one line, as `strcnn info` prints it."""
    test, gopro = (quality or {}).get("test"), (quality or {}).get("gopro")
    if not test:
        return "not measured"
    parts = [f"test set {test['gain_db']:+.3f} dB over {test['clips']} clips below {SHARP_PSNR_DB:.0f} dB"
             + (f" ({', '.join(f'{k} {v:+.3f}' for k, v in test['categories_db'].items())})"
                if test["categories_db"] else "")]
    if test["near_sharp_min_db"] is not None:
        parts.append(f"{test['near_sharp_clips']} near-sharp clips kept at {test['near_sharp_min_db']:.2f} dB or more")
    parts.append("do-no-harm holds" if test["no_harm"] else f"do-no-harm FAILS: {'; '.join(test['harm'])}")
    if natural := (quality or {}).get("natural"):
        parts.append(f"natural photographs {natural['gain_db']:+.3f} dB")
    if gopro:
        parts.append(f"GoPro pairs {gopro['gain_db']:+.3f} dB")
    return ", ".join(parts)
