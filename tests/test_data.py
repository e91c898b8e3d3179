"""Blur synthesis (paper Eq. 1 in linear light), the frozen held-out set, and the GoPro-layout loader."""

import numpy as np
import pytest

pytest.importorskip("skimage")
from export import data  # noqa: E402
from strcnn_sdk.evaluation import find_clips  # noqa: E402


def test_render_clip_shapes_and_blur(rng):
    blurry, sharp = data.render_clip(rng, "astronaut", data.TRAIN_IMAGES, 4, (40, 56))
    assert blurry.shape == sharp.shape == (4, 40, 56, 3) and blurry.dtype == np.uint8
    assert not np.array_equal(blurry, sharp)


def test_static_scene_without_noise_is_sharp():
    settings = data.BlurSettings(speed=(0, 0), rotation=0, zoom=0, objects=(0, 0), noise=(0, 0))
    blurry, sharp = data.render_clip(np.random.default_rng(1), "camera", data.TRAIN_IMAGES, 3, (32, 32), settings)
    assert np.abs(blurry.astype(int) - sharp.astype(int)).max() <= 1


def test_averaging_happens_in_linear_light():
    x = np.array([0.0, 1.0], np.float32)
    mean = data.linear_to_srgb(data.srgb_to_linear(x).mean(keepdims=True))
    assert abs(float(mean[0]) - 0.7354) < 1e-3  # not 0.5: half the light is 73.5% in sRGB
    grey = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_allclose(data.linear_to_srgb(data.srgb_to_linear(grey)), grey, atol=1e-5)


def test_heldout_is_deterministic_and_disjoint_from_training():
    assert not set(data.HELDOUT_IMAGES) & set(data.TRAIN_IMAGES)
    a, b = data.heldout_clips(count=2, frames=2), data.heldout_clips(count=2, frames=2)
    for (na, ba, sa), (nb, bb, sb) in zip(a, b):
        assert na == nb and np.array_equal(ba, bb) and np.array_equal(sa, sb)


def test_gopro_layout_round_trip_and_batches(tmp_path, rng):
    clips = [(f"seq{i}", *data.render_clip(rng, "coins", ("coins",), 5, (24, 32))) for i in range(2)]
    data.write_gopro_layout(tmp_path, clips)
    listed = find_clips(tmp_path)
    assert [name for name, _, _ in listed] == ["seq0", "seq1"] and len(listed[0][1]) == 5
    blurry, sharp = next(data.gopro_batches(tmp_path, 0, batch=3, frames=4, size=(16, 16)))
    assert blurry.shape == sharp.shape == (3, 4, 3, 16, 16) and blurry.dtype == np.float32
    assert 0 <= blurry.min() and blurry.max() <= 1
    # every crop is a crop of some written clip
    crop = (blurry[0, 0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    found = any((window == crop).all() for _, b, _ in clips for frame in b
                for window in np.lib.stride_tricks.sliding_window_view(frame, (16, 16, 3))[:, :, 0].reshape(-1, 16, 16, 3))
    assert found


def test_gopro_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="no clips"):
        find_clips(tmp_path)
    (tmp_path / "s" / "blur").mkdir(parents=True)
    (tmp_path / "s" / "sharp").mkdir()
    (tmp_path / "s" / "blur" / "0.png").write_bytes(b"")
    with pytest.raises(ValueError, match="same non-empty list"):
        find_clips(tmp_path)


def test_heldout_command_writes_gopro_layout(tmp_path, capsys):
    data.main(["--heldout", str(tmp_path)])
    listed = find_clips(tmp_path)
    assert len(listed) == 8 and all(len(blur) == 12 for _, blur, _ in listed)
    assert "wrote 8 held-out clips" in capsys.readouterr().out
