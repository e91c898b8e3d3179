"""Blur synthesis at camera scale (paper Eq. 1 in linear light), its two renderers, the frozen evaluation sets,
the gathered photographs and the GoPro-layout loader."""

import dataclasses
import json
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage")
torch = pytest.importorskip("torch")
from export import data, photos as photo_module  # noqa: E402
from export.photos import write_manifest, write_photo  # noqa: E402
from strcnn_sdk.evaluation import find_clips  # noqa: E402
from strcnn_sdk.metrics import clip_psnr  # noqa: E402

CLEAN = dataclasses.replace(data.TRAIN_SETTINGS, clean_share=1.0)


@pytest.fixture(scope="module")
def sources(photos):
    return data.Sources.folder(photos, "train")


def test_a_patch_is_a_crop_of_the_720p_render(sources):
    """Same scene and seed: the 64x64 training patch is the 720p frame's window at the patch's origin (to one 8-bit
    level: OpenCV warps on a 1/32-pixel grid, so a shifted window can round differently)."""
    for seed in range(3):
        big = data.plan(np.random.default_rng(seed), sources, 3, data.CANVAS, CLEAN)
        small = data.plan(np.random.default_rng(seed), sources, 3, (64, 64), CLEAN)
        assert big.origin == (0, 0) and big.blur_px == pytest.approx(small.blur_px, rel=0.5, abs=0.5)
        y, x = small.origin
        for a, b in zip(data.render(big, sources, np.random.default_rng(0)),
                        data.render(small, sources, np.random.default_rng(0))):
            diff = np.abs(a[:, y:y + 64, x:x + 64].astype(int) - b)
            assert diff.max() <= 1 and diff.mean() < 0.05


def test_sources_are_brought_to_camera_scale(tmp_path):
    big = np.zeros((900, 2560, 3), np.uint8)
    big[:, ::2] = 255  # one-pixel stripes: an area filter averages them to grey, sampling would alias
    entry = photo_module.write_photo(tmp_path, "big", big, {"origin": "t", "license": "CC0-1.0", "split": "train"})
    assert entry["size"] == [1280, 450]
    photo_module.write_manifest(tmp_path, [entry])
    image = data.Sources.folder(tmp_path).image(0)
    assert image.shape == (450, 1280, 3) and np.ptp(image[10:-10, 10:-10]) < 0.02
    (tmp_path / "big.jpg").write_bytes(b"changed")
    with pytest.raises(ValueError, match="sha256"):
        photo_module.read_manifest(tmp_path)


def test_a_still_clean_scene_is_its_own_target(sources):
    blurry, sharp = data.render_clip(np.random.default_rng(1), sources, 3, (32, 48), data.CATEGORIES["still"])
    assert np.array_equal(blurry, sharp)


def test_training_mix_spans_still_to_fast_with_noise_saturation_and_flashes(sources):
    rng = np.random.default_rng(0)
    scenes = [data.plan(rng, sources, 5, (64, 64)) for _ in range(300)]
    blur = np.array([s.blur_px for s in scenes])
    assert 0.02 < (blur == 0).mean() < 0.1 and 0.05 < (blur < data.MILD_PX).mean() < 0.2 and blur.max() > 30
    assert 0.15 < np.mean([s.shot == s.read == 0 for s in scenes]) < 0.35
    assert 0.05 < np.mean([np.ptp(s.gains) > 0 for s in scenes]) < 0.2
    assert np.mean([s.gains[0] > 1 for s in scenes]) > 0.3  # bright areas saturate at the sensor's clip
    assert np.mean([len(s.sprites) > 0 for s in scenes]) > 0.5
    open_share = np.array([s.tau / s.period for s in scenes])  # of the frame interval, the shutter is open
    assert 0.1 <= open_share.min() < 0.15 and open_share.max() == 1.0
    assert abs((open_share < 0.5).mean() - data.TRAIN_SETTINGS.short_shutter_share) < 0.1
    tremor = np.array([s.tremor for s in scenes])
    assert abs(tremor.mean() - data.TRAIN_SETTINGS.tremor_share) < 0.1 and blur[tremor].max() > 30
    assert all(s.period in range(s.tau, 2 * s.tau) and not s.tremor
               for kind, settings in data.CATEGORIES.items() for s in [data.plan(rng, sources, 5, (64, 64), settings)])


def test_tremor_oscillates_with_periods_of_2_to_10_frames():
    period = 12
    path = data._tremor(np.random.default_rng(0), 40 * period, 2, period)
    for axis in path.T:
        power = np.abs(np.fft.rfft(axis)) ** 2
        cycles = np.fft.rfftfreq(len(axis)) * period  # cycles per frame
        assert power[(cycles >= 1 / 10.5) & (cycles <= 1 / 1.9)].sum() > 0.8 * power.sum()


def test_averaging_happens_in_linear_light():
    x = np.array([0.0, 1.0], np.float32)
    mean = data.linear_to_srgb(data.srgb_to_linear(x).mean(keepdims=True))
    assert abs(float(mean[0]) - 0.7354) < 1e-3  # not 0.5: half the light is 73.5% in sRGB
    grey = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_allclose(data.linear_to_srgb(data.srgb_to_linear(grey)), grey, atol=1e-5)


def test_torch_renderer_matches_numpy(sources):
    """Over the same seeds: mean PSNR of blurry against sharp within 0.5 dB, mean blur length within 10%, and
    without noise the frames themselves nearly equal."""
    psnr = {"numpy": [], "torch": []}
    for step in range(4):
        for renderer in psnr:
            blurry, sharp = data.synthetic_batch(sources, 3, step, 6, 4, (48, 48), renderer)
            q = lambda x: (x * 255).round().byte().permute(0, 1, 3, 4, 2).numpy()  # noqa: E731
            psnr[renderer] += [min(clip_psnr(b, s), 60.0) for b, s in zip(q(blurry), q(sharp))]
    assert abs(np.mean(psnr["numpy"]) - np.mean(psnr["torch"])) < 0.5
    blur = {r: np.mean([data.plan(data.batch_rng(3, k), sources, 4, (48, 48)).blur_px for k in range(4)])
            for r in psnr}  # one scene plan serves both renderers
    assert abs(blur["numpy"] - blur["torch"]) <= 0.1 * blur["numpy"]
    scene = data.plan(np.random.default_rng(5), sources, 3, (40, 56), CLEAN)
    ours = data.render(scene, sources, np.random.default_rng(0))
    theirs = data.render_torch([scene], sources, "cpu", torch.Generator().manual_seed(0))
    for a, b in zip(ours, theirs):
        b = (b[0] * 255).round().byte().permute(0, 2, 3, 1).numpy()
        assert np.abs(a.astype(int) - b).mean() < 1.0 and clip_psnr(a, b) > 40


def test_a_soft_scene_softens_input_and_target_alike_in_both_renderers(sources):
    """Defocus is part of the scene: the same Gaussian on every sub-frame, so the target loses detail as the input
    does (the network must keep softness, not sharpen it), and both renderers agree to a level."""
    soft = dataclasses.replace(CLEAN, defocus_share=1.0, still_share=1.0)
    scene = data.plan(np.random.default_rng(2), sources, 3, (48, 64), soft)
    assert soft.defocus[0] <= scene.defocus <= soft.defocus[1]
    scene = dataclasses.replace(scene, defocus=2.0)  # the stand-in photographs are smooth but for their stripes
    detail = lambda x: np.abs(np.diff(x.astype(float), 2, axis=2)).mean()  # curvature: what blur takes  # noqa: E731
    sharp_scene = data.render(dataclasses.replace(scene, defocus=0.0), sources, np.random.default_rng(0))
    ours = data.render(scene, sources, np.random.default_rng(0))
    assert np.array_equal(*ours)  # a still, clean soft scene is still its own target
    assert detail(ours[1]) < 0.9 * detail(sharp_scene[1])
    theirs = data.render_torch([scene], sources, "cpu", torch.Generator().manual_seed(0))
    for a, b in zip(ours, theirs):
        assert np.abs(a.astype(int) - (b[0] * 255).round().byte().permute(0, 2, 3, 1).numpy()).max() <= 1
    assert all(data.plan(data.batch_rng(0, k), sources, 3, (16, 16)).defocus == 0 for k in range(20))  # share 0


def test_training_batches_depend_only_on_seed_and_step(sources):
    a = data.synthetic_batch(sources, 0, 7, 2, 3, (16, 16))
    b = data.synthetic_batch(sources, 0, 7, 2, 3, (16, 16))
    c = data.synthetic_batch(sources, 0, 8, 2, 3, (16, 16))
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])


def test_test_set_is_frozen_camera_scale_and_disjoint(photos):
    clips = data.test_clips()
    assert len(clips) >= 24 and all(b.shape[1:3] == (240, 320) for _, b, _ in clips)
    kinds = [name.split("_")[0] for name, _, _ in clips]
    assert {k: kinds.count(k) for k in data.CATEGORIES} == {k: 6 for k in data.CATEGORIES}
    assert all(np.array_equal(b, s) for (n, b, s) in clips if n.startswith("still"))
    again = data.test_clips()
    assert all(np.array_equal(b1, b2) and np.array_equal(s1, s2) for (_, b1, s1), (_, b2, s2) in zip(clips, again))
    mean = {k: np.mean([clip_psnr(b, s) for n, b, s in clips if n.startswith(k)]) for k in ("mild", "strong")}
    assert mean["mild"] > mean["strong"] + 5
    names = {e["file"].rsplit(".", 1)[0] for e in json.loads((photos / "manifest.json").read_text())["photos"]}
    assert not names & set(data.TEST_IMAGES)
    gathered = {p.name for p in photo_module.PHOTOS}
    assert not gathered & set(data.TEST_IMAGES)
    assert {p.split for p in photo_module.PHOTOS} == set(photo_module.SPLITS)


# The evaluation sets never change: figures in the logs, docs and model card stay comparable across runs and
# changes to the training data. A change to `plan()` or the renderer that moves a pixel of them fails here.
FROZEN = {"test": "486622885af0c7f661bf06899c00abcabd35eb838125087d9c6680ab5e85d94b",
          "validation of the stand-in photographs": "32922ee0af6b26d5b8548d81bbda29ea00070e06d2f148dd0a4b38a3f0b076ee",
          "validation": "fedaec0db8fcbaa5f937987dea27be9b374b5605e9539a57ebafe8973380b75b",
          "natural of the stand-in photographs": "b9517b0415d1f11c48717dc2926142fa2f2ecefe957d0c6e811b8c4f11feee97",
          "natural": "520a6744925ba502641bf1797a534ede2edfe38254024398ab8314cc220a34f8"}
GATHERED = Path(__file__).resolve().parents[1] / "data" / "photos"


def test_the_rendering_path_is_pinned_and_installed():
    """The releases that render the frozen sets are pinned exactly, in one extra that `export` and `test` both
    take, and the README's install gives exactly those (else the frozen digests below cannot hold)."""
    extras = tomllib.loads(data.PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert {"opencv-python-headless", "numpy", "pillow"} <= set(data.rendering_pins())
    assert all("strcnn-sdk[render]" in extras[name] for name in ("export", "test"))
    assert data.rendering_mismatches() == []


def test_an_unpinned_release_is_named(monkeypatch):
    monkeypatch.setattr(data, "rendering_pins", lambda: {"numpy": "0.0.1", "opencv-python-headless": "5.0.0.93"})
    assert data.rendering_mismatches() == [f"numpy {np.__version__} (pinned 0.0.1)"]


def test_evaluation_sets_are_frozen_bit_for_bit(photos):
    assert not data.rendering_mismatches(), "not the pinned rendering path: install the project's `export` extra"
    assert data.clips_sha256(data.test_clips()) == FROZEN["test"]
    assert data.clips_sha256(data.validation_clips(photos)) == FROZEN["validation of the stand-in photographs"]
    assert data.clips_sha256(data.natural_clips(photos)) == FROZEN["natural of the stand-in photographs"]
    if (GATHERED / "manifest.json").is_file():  # a clone with the gathered photographs
        assert data.clips_sha256(data.validation_clips(GATHERED)) == FROZEN["validation"]
        assert data.clips_sha256(data.natural_clips(GATHERED)) == FROZEN["natural"]


def test_validation_set_comes_from_the_held_out_photographs(photos):
    clips = data.validation_clips(photos)
    assert len(clips) == len(data.VALIDATION_KINDS) and all("_p3_" in name for name, _, _ in clips)


def test_natural_set_is_a_moderate_and_a_strong_clip_of_each_natural_photograph(photos):
    names = [name for name, _, _ in data.natural_clips(photos)]
    assert names == ["moderate_p4_00", "strong_p4_01"]


def test_a_folder_gathered_before_the_natural_split_says_to_gather_again(photos, tmp_path):
    """`python -m export.data --natural` (and `export.quality --photos`) over photographs gathered before the
    natural split existed end in one line saying what to do, not a traceback."""
    old = tmp_path / "photos"
    old.mkdir()
    entries = [e for e in json.loads((photos / "manifest.json").read_text())["photos"] if e["split"] != "natural"]
    for entry in entries:
        (old / entry["file"]).write_bytes((photos / entry["file"]).read_bytes())
    write_manifest(old, entries)
    with pytest.raises(SystemExit, match="no photographs in the natural split; .* gathering again: python -m "
                                         "export.photos"):
        data.main(["--natural", str(tmp_path / "natural"), "--photos", str(old)])
    assert not (tmp_path / "natural").exists()


def test_a_run_trains_on_the_collections_up_to_its_own(photos, tmp_path):
    """Photographs that join in a later collection never reach a run of an earlier one; a folder gathered before
    collections (no field in its manifest) is collection 1."""
    later = tmp_path / "photos"
    later.mkdir()
    entries = json.loads((photos / "manifest.json").read_text())["photos"]
    for entry in entries:
        (later / entry["file"]).write_bytes((photos / entry["file"]).read_bytes())
    entries.append(write_photo(later, "p5", cv2.imread(str(photos / "p0.jpg")), {
        "origin": "tests", "license": "CC0-1.0", "split": "train", "collection": 2}))
    write_manifest(later, [{k: v for k, v in e.items() if e["file"] != "p0.jpg" or k != "collection"}
                           for e in entries])
    assert data.Sources.folder(later, "train", collection=1).names == ["p0", "p1", "p2"]
    assert data.Sources.folder(later, "train", collection=2).names == ["p0", "p1", "p2", "p5"]
    assert data.Sources.folder(later, "train").names == ["p0", "p1", "p2", "p5"]
    assert data.Sources.folder(later, "natural").names == ["p4"]


def test_the_landing_photographs_carry_their_licences_and_hold_out_two_photographers():
    land = [p for p in photo_module.PHOTOS if p.collection == 2]
    assert len(land) == len({p.name for p in land}) >= 150
    assert {p.name for p in land if p.split == "natural"} == {f"{who}{i}" for who in ("bwerner", "myrabella")
                                                              for i in range(9)}
    licences = {p.name: p.license for p in land}
    assert (licences["bwerner0"], licences["beach7-sfiera"], licences["lava5"], licences["city0"]) == \
        ("CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-SA-4.0", "public-domain")
    assert not {"nasa8", "nasa9", "space6", "earthrise"} & set(licences)


def test_gopro_layout_round_trip_and_batches(tmp_path, rng, sources):
    clips = [(f"seq{i}", *data.render_clip(rng, sources, 5, (24, 32))) for i in range(2)]
    data.write_gopro_layout(tmp_path, clips)
    listed = find_clips(tmp_path)
    assert [name for name, _, _ in listed] == ["seq0", "seq1"] and len(listed[0][1]) == 5
    blurry, sharp = next(data.gopro_batches(tmp_path, 0, batch=3, frames=4, size=(16, 16)))
    assert blurry.shape == sharp.shape == (3, 4, 3, 16, 16) and blurry.dtype == torch.float32
    assert 0 <= blurry.min() and blurry.max() <= 1
    # every crop is a crop of some written clip
    crop = (blurry[0, 0].permute(1, 2, 0) * 255).round().byte().numpy()
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


def test_test_command_writes_gopro_layout(tmp_path, capsys):
    data.main(["--test", str(tmp_path)])
    listed = find_clips(tmp_path)
    assert len(listed) == 24 and all(len(blur) == data.EVAL_FRAMES for _, blur, _ in listed)
    assert "wrote 24 test clips" in capsys.readouterr().out


def test_torch_renderer_renders_a_mixed_batch_as_each_clip_alone(sources):
    """One call for a whole batch (as on a GPU) gives the clean frames of each scene rendered alone, for scenes
    of different photographs, exposures (tau) and numbers of objects; noise-free so that frames compare. Up to
    rounding: the objects' atlas, and so their coordinates' last bits, depend on the batch."""
    scenes = [dataclasses.replace(s, shot=0.0, read=0.0)
              for s in data.plan_batch(sources, 0, 3, 6, 3, (20, 24))[0]]
    assert len({s.source for s in scenes}) > 1 and len({s.tau for s in scenes}) > 1
    assert len({len(s.sprites) for s in scenes}) > 1
    whole = data.render_torch(scenes, sources, "cpu", torch.Generator(), budget=2**30)
    alone = [data.render_torch([s], sources, "cpu", torch.Generator()) for s in scenes]
    for k in (0, 1):  # blurry, sharp
        levels = ((whole[k] - torch.cat([a[k] for a in alone])).abs() * 255).round()
        assert levels.max() <= 1 and (levels == 0).float().mean() > 0.999
    assert whole[0].shape == (6, 3, 3, 20, 24)
