"""The figures a model is judged by: the gain over the clips below 40 dB input, per category, and the one
do-no-harm rule (near-sharp outputs at 40 dB or more, mild not negative, no clip losing more than 0.5 dB)."""

import math

from strcnn_sdk.metrics import describe, ships, summarize


def row(clip: str, blurry: float, model: float) -> dict:
    return {"clip": clip, "frames": 8, "psnr_blurry": blurry, "psnr_model": model}


def test_near_sharp_input_is_judged_apart_and_each_must_stay_at_40_db():
    rows = [row("still_a_0", math.inf, 45.0), row("mild_a_1", 42.0, 41.0), row("mild_b_2", 35.0, 35.5),
            row("strong_b_3", 20.0, 23.0)]
    summary = summarize(rows)
    assert summary["gain"] == (0.5 + 3.0) / 2 and summary["blurred_clips"] == 2 and summary["blurred_frames"] == 16
    assert summary["sharp_clips"] == 2 and summary["sharp_psnr"] == 41.0  # the worst near-sharp output
    assert summary["categories"] == {"mild": 0.5, "strong": 3.0} and summary["worst"] == ("mild_b_2", 0.5)
    assert summary["no_harm"] and "do-no-harm holds" in describe(summary)
    rows[1] = row("mild_a_1", 42.0, 39.9)  # one near-sharp clip drops below 40 dB, though the mean stays above
    summary = summarize(rows)
    assert not summary["no_harm"] and summary["harm"] == ["mild_a_1 (near-sharp) comes out at 39.90 dB"]
    assert "FAILS" in describe(summary) and "mild_a_1" in describe(summary)


def test_mild_clips_must_not_lose_on_average():
    rows = [row("mild_a_0", 39.0, 38.6), row("mild_b_1", 30.0, 30.2), row("strong_c_2", 20.0, 25.0)]
    summary = summarize(rows)
    assert abs(summary["categories"]["mild"] + 0.1) < 1e-9 and not summary["no_harm"]
    assert summary["harm"] == ["mild clips lose 0.100 dB on average"]


def test_no_clip_may_lose_more_than_half_a_db():
    rows = [row("moderate_a_0", 30.0, 29.4), row("strong_b_1", 20.0, 25.0), row("mild_c_2", 33.0, 33.1)]
    summary = summarize(rows)
    assert summary["gain"] > 1 and summary["worst"][0] == "moderate_a_0" and not summary["no_harm"]
    assert summary["harm"] == ["moderate_a_0 loses 0.600 dB"]
    rows[0] = row("moderate_a_0", 30.0, 29.6)
    assert summarize(rows)["no_harm"]


def test_folders_without_categories_report_the_mean_gain():
    summary = summarize([row("Flower", 25.0, 25.5), row("Istanbul", 24.0, 24.1)])
    assert summary["categories"] == {} and summary["sharp_psnr"] is None and summary["no_harm"]
    assert abs(summary["gain"] - 0.3) < 1e-9


def summary_of(mild: float, worst: float, near_sharp: float, strong: float = 3.0) -> dict:
    """A validation summary with mild gain `mild`, a moderate clip gaining `worst`, and a still clip's output."""
    return summarize([row("mild_a_0", 35.0, 35.0 + mild), row("moderate_b_1", 30.0, 30.0 + worst),
                      row("strong_c_2", 20.0, 20.0 + strong), row("still_d_3", math.inf, near_sharp)])


def test_a_better_model_ships_when_the_rule_holds_or_it_is_no_worse_on_every_harm_figure():
    shipped = summary_of(mild=-0.5, worst=-1.9, near_sharp=40.8)
    assert not shipped["no_harm"]
    verdict, why = ships(summary_of(mild=0.1, worst=-0.2, near_sharp=41.0), shipped)
    assert verdict and "do-no-harm holds" in why
    # fails the rule, but no worse than the shipped model on mild, worst clip and near-sharp output
    verdict, why = ships(summary_of(mild=-0.3, worst=-1.0, near_sharp=40.5), shipped)
    assert verdict and "QualityWarning" in why
    # above their lines, near-sharp outputs (40 dB) and worst clips (-0.5 dB) count alike
    assert ships(summary_of(mild=-0.3, worst=-1.0, near_sharp=40.1), summary_of(-0.5, -1.9, 45.0, strong=1.0))[0]


def test_a_model_worse_on_any_harm_figure_or_not_better_does_not_ship():
    shipped = summary_of(mild=-0.5, worst=-1.9, near_sharp=40.8)
    verdict, why = ships(summary_of(mild=-0.6, worst=-1.0, near_sharp=41.0, strong=6.0), shipped)
    assert not verdict and "mild -0.600 against -0.500" in why
    verdict, why = ships(summary_of(mild=-0.3, worst=-1.0, near_sharp=39.0, strong=6.0), shipped)
    assert not verdict and "near-sharp" in why
    verdict, why = ships(summary_of(mild=0.1, worst=-0.2, near_sharp=41.0, strong=0.0), shipped)
    assert not verdict and "not above the shipped model's" in why  # do-no-harm holds, but no better
