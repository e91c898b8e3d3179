"""The figures a model is judged by: the gain over blurred clips, per category, and the do-no-harm checks."""

import math

from strcnn_sdk.metrics import describe, summarize


def row(clip: str, blurry: float, model: float) -> dict:
    return {"clip": clip, "frames": 8, "psnr_blurry": blurry, "psnr_model": model}


def test_sharp_input_is_judged_apart_and_must_stay_at_40_db():
    rows = [row("still_a_0", math.inf, 45.0), row("mild_a_1", 35.0, 35.5), row("strong_b_2", 20.0, 23.0)]
    summary = summarize(rows)
    assert summary["gain"] == (0.5 + 3.0) / 2 and summary["blurred_clips"] == 2 and summary["blurred_frames"] == 16
    assert summary["sharp_psnr"] == 45.0 and summary["categories"] == {"mild": 0.5, "strong": 3.0}
    assert summary["no_harm"] and "do-no-harm holds" in describe(summary)
    rows[0] = row("still_a_0", math.inf, 39.9)
    assert not summarize(rows)["no_harm"]


def test_mild_clips_must_not_lose_on_average():
    rows = [row("mild_a_0", 40.0, 39.0), row("mild_b_1", 30.0, 30.4), row("strong_c_2", 20.0, 25.0)]
    summary = summarize(rows)
    assert abs(summary["categories"]["mild"] + 0.3) < 1e-9 and not summary["no_harm"]
    assert "FAILS" in describe(summary)


def test_folders_without_categories_report_the_mean_gain():
    summary = summarize([row("Flower", 25.0, 25.5), row("Istanbul", 24.0, 24.1)])
    assert summary["categories"] == {} and summary["sharp_psnr"] is None and summary["no_harm"]
    assert abs(summary["gain"] - 0.3) < 1e-9
