"""The runtime SDK: Model and Deblurrer against the PyTorch model, batching, threads, dtypes and errors."""

import dataclasses
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from strcnn_sdk import Deblurrer, Model, QualityWarning, StreamState, UntrainedModelWarning
from strcnn_sdk.model import shipped_model_path

torch = pytest.importorskip("torch")


def reference(model, clip: np.ndarray) -> np.ndarray:
    """The PyTorch model over a float clip [T, H, W, 3] with the ends repeated, clipped as the contract says."""
    m = model.m
    frames = torch.from_numpy(np.concatenate([clip[:1]] * m + [clip] + [clip[-1:]] * m)).permute(0, 3, 1, 2)
    with torch.no_grad():
        out, _ = model.run(frames[None])
    return out[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()


def test_streaming_equals_pytorch(tiny, tiny_model, rng):
    clip = rng.random((6, 16, 22, 3), dtype=np.float32)
    got = np.stack(list(Deblurrer(tiny_model).stream(clip)))
    error = np.abs(got - reference(tiny[1], clip)).max()
    print(f"push/flush vs PyTorch, 6 frames 16x22: max abs difference {error:.3g}")
    assert got.shape == clip.shape and got.dtype == np.float32 and error <= 1e-4


def test_step_equals_push_and_odd_sizes_are_padded_and_cropped(tiny_model, rng):
    clip = rng.random((4, 15, 21, 3), dtype=np.float32)
    pushed = list(Deblurrer(tiny_model).stream(clip))
    stepper = Deblurrer(tiny_model)
    padded = np.concatenate([clip[:1], clip, clip[-1:]])
    stepped = [stepper.step(list(padded[i:i + 3])) for i in range(4)]
    assert all(p.shape == (15, 21, 3) for p in pushed)
    np.testing.assert_array_equal(np.stack(pushed), np.stack(stepped))
    # the crop keeps the top-left: same as running reflect-padded even frames and cropping
    even = np.pad(padded, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="reflect")
    evener = Deblurrer(tiny_model)
    cropped = [evener.step(even[i:i + 3])[:15, :21] for i in range(4)]
    np.testing.assert_array_equal(np.stack(stepped), np.stack(cropped))


@pytest.mark.parametrize("length", [1, 2, 5])
def test_every_frame_comes_out_once(tiny_model, rng, length):
    """push returns None only while the first m frames are buffered; flush owes the rest; stream composes both."""
    deblurrer = Deblurrer(tiny_model)
    clip = rng.integers(0, 256, (length, 8, 10, 3), dtype=np.uint8)
    outs = [deblurrer.push(f) for f in clip]
    assert outs[0] is None and all(o is not None for o in outs[1:])
    flushed = [o for o in outs if o is not None] + deblurrer.flush()
    assert len(flushed) == length
    assert deblurrer.state is None  # flush ended the stream
    np.testing.assert_array_equal(np.stack(list(deblurrer.stream(clip))), np.stack(flushed))


def test_uint8_float_and_bgr_agree(tiny_model, rng):
    clip = rng.integers(0, 256, (4, 12, 14, 3), dtype=np.uint8)
    as_uint8 = np.stack(list(Deblurrer(tiny_model).stream(clip)))
    as_float = np.stack(list(Deblurrer(tiny_model).stream(clip.astype(np.float32) / 255)))
    as_bgr = np.stack(list(Deblurrer(tiny_model, color="bgr").stream(clip[..., ::-1].copy())))
    assert as_uint8.dtype == np.uint8 and as_float.dtype == np.float32
    np.testing.assert_array_equal(as_bgr[..., ::-1], as_uint8)
    assert np.abs(as_float * 255 - as_uint8).max() <= 0.5 + 1e-3


def test_batched_streams_equal_one_by_one(tiny_model, rng):
    clips = rng.random((3, 5, 10, 12, 3), dtype=np.float32)
    batched = np.stack(list(Deblurrer(tiny_model).stream(clips.transpose(1, 0, 2, 3, 4))), 1)
    single = np.stack([np.stack(list(Deblurrer(tiny_model).stream(c))) for c in clips])
    assert batched.shape == clips.shape
    assert np.abs(batched - single).max() <= 1e-5


def test_state_read_write_continues_a_stream(tiny_model, rng):
    clip = rng.random((6, 8, 8, 3), dtype=np.float32)
    whole = list(Deblurrer(tiny_model).stream(clip))
    first = Deblurrer(tiny_model)
    head = [first.step(clip[i:i + 3]) for i in range(2)]
    second = Deblurrer(tiny_model)
    second.state = first.state
    tail = [second.step(clip[i:i + 3]) for i in range(2, 4)]
    straight = Deblurrer(tiny_model)
    expected = [straight.step(clip[i:i + 3]) for i in range(4)]
    np.testing.assert_array_equal(np.stack(head + tail), np.stack(expected))
    assert len(whole) == 6
    fresh = Deblurrer(tiny_model)
    assert fresh.state is None
    first.reset()
    assert first.state is None


def test_size_or_dtype_change_mid_stream_is_an_error_until_reset(tiny_model, rng):
    deblurrer = Deblurrer(tiny_model)
    deblurrer.push(rng.random((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="size changed mid-stream.*reset"):
        deblurrer.push(rng.random((8, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="dtype changed mid-stream from float32 to uint8"):
        deblurrer.push(np.zeros((8, 8, 3), np.uint8))
    assert deblurrer.push(rng.random((8, 8, 3), dtype=np.float32)).dtype == np.float32  # the stream goes on
    deblurrer.reset()
    assert deblurrer.push(rng.random((8, 10, 3), dtype=np.float32)) is None


def test_bad_windows_raise_clear_errors(tiny_model):
    deblurrer = Deblurrer(tiny_model)
    with pytest.raises(ValueError, match="empty window"):
        deblurrer.step([])
    with pytest.raises(ValueError, match="2m\\+1 = 3 frames"):
        deblurrer.step(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in shape or dtype"):
        deblurrer.step([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="differ in shape or dtype"):
        deblurrer.step([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="color"):
        Deblurrer(tiny_model, color="yuv")
    with pytest.raises(TypeError, match="state must be a StreamState"):
        deblurrer.state = (np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 8, 4, 4), np.float32))


def test_model_file_errors(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="not found"):
        Model(tmp_path / "missing.onnx")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(tiny[0], lonely)
    with pytest.raises(FileNotFoundError, match="sidecar"):
        Model(lonely)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    side = json.loads(tiny[0].with_suffix(".json").read_text())
    corrupt.with_suffix(".json").write_text(json.dumps({k: v for k, v in side.items() if k != "onnx_sha256"}))
    with pytest.raises(ValueError, match="cannot be loaded"):
        Model(corrupt)
    mismatched = tmp_path / "mismatched.onnx"
    shutil.copy(tiny[0], mismatched)
    mismatched.with_suffix(".json").write_text(json.dumps(dict(side, onnx_sha256="0" * 64)))
    with pytest.raises(ValueError, match="belongs to another model"):
        Model(mismatched)
    wrong = tmp_path / "wrong.onnx"
    shutil.copy(tiny[0], wrong)
    wrong.with_suffix(".json").write_text(json.dumps(dict(side, width=16)))
    with pytest.raises(ValueError, match="does not follow|needs tensor"):
        Model(wrong)


def test_untrained_model_warns_and_cpu_console_stays_clean(tiny):
    code = ("import warnings; from strcnn_sdk import Model; "
            f"m = Model({str(tiny[0])!r}); print(m.provider, m.trained)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    provider, trained = run.stdout.split()
    assert provider in ("CPUExecutionProvider", "OpenVINO") and trained == "False"  # OpenVINO: auto on Intel CPUs
    assert "UNTRAINED" in run.stderr
    assert ":onnxruntime" not in run.stderr  # no provider error or warning from ONNX Runtime's log


def judged_copy(tiny_path: Path, folder: Path, no_harm: bool) -> Path:
    """The tiny model as a trained one whose sidecar states a test verdict (failing: the mild clips lose)."""
    side = json.loads(tiny_path.with_suffix(".json").read_text())
    test = {"gain_db": 0.2, "clips": 16, "categories_db": {"mild": -0.2}, "worst_clip_db": -0.6, "near_sharp_clips": 8,
            "near_sharp_min_db": 44.0, "no_harm": no_harm, "harm": [] if no_harm else ["mild clips lose 0.200 dB on average"]}
    path = folder / f"judged_{no_harm}.onnx"
    shutil.copy(tiny_path, path)
    path.with_suffix(".json").write_text(json.dumps(dict(side, trained=True, quality={"test": test})))
    return path


def test_a_model_whose_own_verdict_fails_warns_once_when_it_first_runs(tiny, tmp_path):
    """The QualityWarning: nothing when the model loads, one line when it first runs, pointing at the caller's
    line (not inside the package), and once per process and model file; a model whose verdict holds never warns."""
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), np.uint8)
    for verdict in (False, True):
        path = judged_copy(tiny[0], tmp_path, verdict)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = Model(path, providers="cpu")
            assert not [w for w in caught if issubclass(w.category, QualityWarning)]  # loading is not using
            deblurrer = Deblurrer(model)
            pushed = [deblurrer.push(frame) for frame in frames]  # the line the warning must name
            line = sys._getframe().f_lineno - 1
            Deblurrer(Model(path, providers="cpu")).push(frames[0])  # the same file again: said already
        found = [w for w in caught if issubclass(w.category, QualityWarning)]
        assert any(out is not None for out in pushed)
        if verdict:
            assert not found
        else:
            assert len(found) == 1 and "mild clips lose 0.200 dB on average" in str(found[0].message)
            assert "\n" not in str(found[0].message)
            assert (found[0].filename, found[0].lineno) == (__file__, line)


@pytest.mark.parametrize("name", ["full", "fast"])
def test_shipped_sidecars_state_their_own_test_verdict_and_gopro_gain(name):
    """Each precision's figures are its own (measured in that precision) and the variants' comparison with fp32
    matches the fp32 sidecar, so no stale figure survives a change of weights."""
    fp32 = json.loads(shipped_model_path("fp32", name=name).with_suffix(".json").read_text())
    for precision in ("fp32", "int8", "fp16"):
        side = json.loads(shipped_model_path(precision, name=name).with_suffix(".json").read_text())
        quality = side["quality"]
        assert set(quality) == {"measured", "test", "gopro"} | ({"validation", "natural"} if precision == "fp32"
                                                                else set())
        assert f"--precision {precision}" in quality["measured"]
        assert isinstance(quality["test"]["no_harm"], bool) and quality["test"]["no_harm"] == (not quality["test"]["harm"])
        assert isinstance(quality["gopro"]["gain_db"], float)
        if precision != "fp32":
            assert side["quality_vs_fp32"] == {"test_gain_db": quality["test"]["gain_db"],
                                               "fp32_test_gain_db": fp32["quality"]["test"]["gain_db"],
                                               "loss_db": round(fp32["quality"]["test"]["gain_db"]
                                                                - quality["test"]["gain_db"], 3)}


def test_the_default_is_the_shipped_model_that_gains_most_without_harm():
    """models.json's default is, of the shipped models whose validation figures (fp32, in their sidecars) hold the
    do-no-harm rule, the one with the highest validation gain; it holds the rule on the test set in every
    precision, carries its guard, and is what runs when no model is named."""
    from strcnn_sdk.model import default_model, shipped_default, shipped_models

    validation = {name: json.loads(shipped_model_path("fp32", name=name).with_suffix(".json").read_text())
                  ["quality"]["validation"] for name in shipped_models()}
    holding = {name: v["gain_db"] for name, v in validation.items() if v["no_harm"]}
    default = shipped_default()
    assert default == max(holding, key=holding.get)
    for precision in ("fp32", "int8", "fp16"):
        side = json.loads(shipped_model_path(precision, name=default).with_suffix(".json").read_text())
        assert side["quality"]["test"]["no_harm"], (precision, side["quality"]["test"]["harm"])
        assert side["guard"]["high"] > side["guard"]["low"] >= 0
    assert shipped_model_path() == shipped_model_path(name=default) and default_model("cpu") == default
    assert Deblurrer().model.meta["name"] == Path(shipped_models()[default]["file"]).stem


def test_shipped_models_by_name():
    """"fast" and "full" name the shipped models wherever a model is taken; the automatic precision applies to
    either; a path is a file (a file named like a model is given as a Path); an unknown name says what exists."""
    from strcnn_sdk.model import default_model, shipped_models

    assert list(shipped_models()) == ["full", "fast"]
    fast = Model("fast", providers="cpu")
    assert fast.path == shipped_model_path("auto", name="fast") and fast.meta["width"] == 32
    assert "auto picks" in fast.precision_reason
    assert Model("full", precision="fp32").path == shipped_model_path("fp32", name="full")
    assert Deblurrer("fast").model.path == fast.path and Deblurrer("full").model.meta["name"] == "strcnn_dtb"
    assert default_model("cpu", realtime=True) == "fast"
    with pytest.raises(FileNotFoundError, match="a shipped model is named full or fast"):
        Model("fastest")
    with pytest.raises(FileNotFoundError, match="model file fast not found"):
        Model(Path("fast"))
    with pytest.raises(ValueError, match="the shipped ones are full, fast"):
        shipped_model_path(name="fastest")


def test_a_run_imports_no_torch(tiny):
    code = f"""
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from strcnn_sdk import Deblurrer
frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
list(Deblurrer({str(tiny[0])!r}).stream(frames))
print("torch" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["False"]


def test_assigned_state_must_fit_the_model_and_fixes_the_frame_size(tiny_model, rng):
    deblurrer = Deblurrer(tiny_model)
    deblurrer.step(rng.random((3, 8, 8, 3), dtype=np.float32))
    state = deblurrer.state
    with pytest.raises(ValueError, match="state must hold F"):
        deblurrer.state = dataclasses.replace(state, F=np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        deblurrer.state = dataclasses.replace(state, h=np.full_like(state.h, np.nan))
    other = Deblurrer(tiny_model)
    other.state = state
    with pytest.raises(ValueError, match="size changed mid-stream from 8x8 to 8x10"):
        other.step(rng.random((3, 8, 10, 3), dtype=np.float32))


def _streams(model: Model, clip: np.ndarray, handoff: int) -> np.ndarray:
    """A clip pushed through one Deblurrer, or handed to a second one (state assigned) after `handoff` frames."""
    first = Deblurrer(model)
    out = [s for s in map(first.push, clip[:handoff]) if s is not None]
    second = Deblurrer(model)
    second.state = first.state
    out += [s for s in map(second.push, clip[handoff:]) if s is not None] + second.flush()
    return np.stack(out)


@pytest.fixture(scope="module")
def tiny_m2(tmp_path_factory) -> Model:
    """A tiny random model with m = 2 (5-frame windows)."""
    torch = pytest.importorskip("torch")
    from export.model import STRCNN
    from export.onnx import export

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("tiny_m2") / "tiny_m2.onnx"
    export(STRCNN("dtb", m=2, width=8), path, trained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        return Model(path, providers="cpu", threads=1)


@pytest.mark.parametrize("which", ["shipped", "tiny_m2"])
def test_state_hands_a_pushed_stream_over_exactly(which, tiny_m2, rng):
    model = tiny_m2 if which == "tiny_m2" else Model(providers="cpu", threads=1, precision="fp32")
    clip = rng.integers(0, 256, (2 * model.window + 1, 12, 20, 3), np.uint8)
    whole = np.stack(list(Deblurrer(model).stream(clip)))
    assert len(whole) == len(clip)
    for k in range(0, model.window + 1):  # 0 to 2m+1 frames pushed into the first
        np.testing.assert_array_equal(_streams(model, clip, k), whole, err_msg=f"handed over after {k} frames")


def test_state_survives_a_restart_through_npz(tiny_model, rng, tmp_path):
    clip = rng.random((5, 8, 8, 3), dtype=np.float32)
    first = Deblurrer(tiny_model)
    head = [s for s in map(first.push, clip[:3]) if s is not None]
    first.state.save(tmp_path / "state.npz")
    second = Deblurrer(tiny_model)
    second.state = StreamState.load(tmp_path / "state.npz")
    tail = [s for s in map(second.push, clip[3:]) if s is not None] + second.flush()
    np.testing.assert_array_equal(np.stack(head + tail), np.stack(list(Deblurrer(tiny_model).stream(clip))))
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary file left
    (tmp_path / "bad.npz").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="not a stream state"):
        StreamState.load(tmp_path / "bad.npz")


def test_a_step_that_raises_leaves_the_stream_as_it_was(tiny, rng, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        model = Model(tiny[0], providers="cpu", threads=1)
    clip = rng.random((6, 8, 8, 3), dtype=np.float32)
    expected = list(Deblurrer(model).stream(clip))
    real = model.session.run_with_iobinding

    def failing(*args, **kwargs):
        raise RuntimeError("injected failure")

    for fail_at in range(model.m, len(clip) + 1):  # a failure at every push that runs the model, and in flush
        deblurrer, out = Deblurrer(model), []
        for i, frame in enumerate(clip):
            if i == fail_at:
                monkeypatch.setattr(model.session, "run_with_iobinding", failing)
                with pytest.raises(RuntimeError, match="injected"):
                    deblurrer.push(frame)
                monkeypatch.setattr(model.session, "run_with_iobinding", real)
            sharp = deblurrer.push(frame)
            if sharp is not None:
                out.append(sharp)
        if fail_at == len(clip):
            monkeypatch.setattr(model.session, "run_with_iobinding", failing)
            with pytest.raises(RuntimeError, match="injected"):
                deblurrer.flush()
            monkeypatch.setattr(model.session, "run_with_iobinding", real)
        out += deblurrer.flush()
        np.testing.assert_array_equal(np.stack(out), np.stack(expected), err_msg=f"failure at {fail_at}")


def _cuda_usable() -> bool:
    from strcnn_sdk.providers import nvidia_driver_present
    import onnxruntime as ort

    return nvidia_driver_present() and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_usable(), reason="needs an NVIDIA GPU and onnxruntime-gpu with its CUDA libraries")
def test_cuda_keeps_state_on_device_and_matches_cpu(tiny, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        gpu, cpu = Model(tiny[0], providers="cuda"), Model(tiny[0], providers="cpu")
    assert gpu.provider == "CUDAExecutionProvider"
    clip = rng.random((5, 32, 48, 3), dtype=np.float32)
    on_gpu = Deblurrer(gpu)
    out = list(on_gpu.stream(clip[:4]))
    on_gpu.push(clip[4])
    assert on_gpu._state[0].device_name().lower() == "cuda"
    assert np.abs(np.stack(out) - np.stack(list(Deblurrer(cpu).stream(clip[:4])))).max() <= 1e-3


def test_auto_precision_picks_int8_only_where_the_cpu_has_int8_dot_products():
    from strcnn_sdk.model import shipped_model_path
    from strcnn_sdk.system import cpu_has_int8_dot

    auto = shipped_model_path("auto", "CPUExecutionProvider")
    if shipped_model_path("int8").is_file():
        assert (auto == shipped_model_path("int8")) == cpu_has_int8_dot()
    else:
        assert auto == shipped_model_path("fp32")
    with pytest.raises(ValueError, match="precision"):
        Model(precision="int4")


def test_providers_as_onnx_runtime_spells_them_session_options_warmup_and_close(tiny):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        with Model(tiny[0], providers=[("CPUExecutionProvider", {})], threads=1, session_options=options) as model:
            assert model.provider == "CPUExecutionProvider" and model.device == "cpu"
            assert model.session.get_session_options().log_severity_level == 3
            assert model.precision_reason == "fp32: the model file given"
            model.warmup(10, 14)
            Deblurrer(model).step(np.zeros((3, 10, 14, 3), np.uint8))
        with pytest.raises(RuntimeError, match="closed"):
            model.run(np.zeros((1, 9, 8, 8), np.float32), ())
        if "CUDAExecutionProvider" in ort.get_available_providers():  # a GPU build: the pair form must not crash
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no usable GPU here: it runs on the CPU
                assert Model(tiny[0], providers=[("CUDAExecutionProvider", {"device_id": 0}), "cpu"]).provider
        with pytest.raises(TypeError, match="a provider is a name or a"):
            Model(tiny[0], providers=[("CPUExecutionProvider", "fast")])
    assert "asked for" in Model(providers="cpu", precision="fp32").precision_reason


def test_tiles_blend_into_the_untiled_output_and_hand_over_exactly(tiny_model, rng):
    clip = rng.integers(0, 256, (5, 70, 100, 3), np.uint8)
    untiled = np.stack(list(Deblurrer(tiny_model, tile=None).stream(clip))).astype(float)
    tiled = np.stack(list(Deblurrer(tiny_model, tile=48).stream(clip))).astype(float)
    assert 10 * np.log10(255 ** 2 / np.mean((tiled - untiled) ** 2)) > 35
    first = Deblurrer(tiny_model, tile=48)
    first.push(clip[0])
    assert first.state.tile == 48 and first.state.F.shape[0] == 6  # 2 x 3 tiles of 48 px over 72 x 104
    for k in range(1, 4):  # from the first frame on, the stream is tiled
        first = Deblurrer(tiny_model, tile=48)
        out = [s for s in map(first.push, clip[:k]) if s is not None]
        second = Deblurrer(tiny_model, tile=None)  # the state brings its tiling along
        second.state = first.state
        out += [s for s in map(second.push, clip[k:]) if s is not None] + second.flush()
        np.testing.assert_array_equal(np.stack(out), tiled.astype(np.uint8), err_msg=f"after {k} frames")
    with pytest.raises(ValueError, match="tile must be"):
        Deblurrer(tiny_model, tile=7)


def test_auto_tiles_only_large_frames_and_a_failing_tile_leaves_the_stream_as_it_was(tiny, rng, monkeypatch):
    from strcnn_sdk import deblurrer as module

    monkeypatch.setattr(module, "AUTO_TILE_PIXELS", 40 * 40)
    monkeypatch.setattr(module, "TILE", 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)
        model = Model(tiny[0], providers="cpu", threads=1)
    small, large = Deblurrer(model), Deblurrer(model)
    small.push(rng.integers(0, 256, (40, 40, 3), np.uint8))
    clip = rng.integers(0, 256, (4, 40, 48, 3), np.uint8)
    large.push(clip[0])
    assert small.state.tile == 0 and large.state.tile == 32
    expected = list(Deblurrer(model).stream(clip))
    real, calls = model.session.run_with_iobinding, []

    def fails_on_the_second_tile(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(model.session, "run_with_iobinding", fails_on_the_second_tile)
    with pytest.raises(RuntimeError, match="injected"):
        large.push(clip[1])
    monkeypatch.setattr(model.session, "run_with_iobinding", real)
    out = [s for s in map(large.push, clip[1:]) if s is not None] + large.flush()
    np.testing.assert_array_equal(np.stack(out), np.stack(expected))


@pytest.mark.parametrize("shown", [False, True])
def test_onnxruntime_log_is_quiet_unless_asked_for(shown):
    """The fp16 graph on the CPU makes ONNX Runtime warn about constant folding, and a CUDA request that falls back
    makes it print why the CUDA libraries did not load: none of it reaches stderr unless the log is shown."""
    cuda = "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from strcnn_sdk.model import Model, show_onnxruntime_log, shipped_model_path\n"
            f"show_onnxruntime_log({shown})\n"
            "Model(shipped_model_path('fp16'), providers='cpu')\n"
            + ("Model(providers=['cuda', 'cpu'])\n" if cuda else ""))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    noise = run.stderr + run.stdout
    if shown:
        assert "onnxruntime" in noise
    else:
        assert noise == ""


def test_a_request_that_names_cuda_but_not_the_cpu_raises_and_a_list_ending_in_cpu_falls_back(tiny):
    from strcnn_sdk.providers import cuda_usable

    if cuda_usable():
        pytest.skip("CUDA is usable here")
    with pytest.raises(ValueError, match="auto or cpu"):
        Model(tiny[0], providers="cuda")
    with pytest.raises(ValueError, match="auto or cpu"):
        Model(tiny[0], providers=[("CUDAExecutionProvider", {"device_id": 0})])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = Model(tiny[0], providers=["cuda", "cpu"])
    assert model.provider == "CPUExecutionProvider"
    assert [str(w.message).count("\n") for w in caught if w.category is RuntimeWarning] == [0]


def test_strength_blends_input_and_output_and_zero_gives_the_input_back(tiny_model, rng):
    """strength S gives input + S (output - input), in uint8 and float, tiled or not; 0 the input bit for bit;
    it may change mid-stream without touching the state; anything outside [0, 1] is refused."""
    frames = [rng.integers(0, 256, (21, 35, 3), dtype=np.uint8) for _ in range(4)]
    floats = [f.astype(np.float32) / 255 for f in frames]
    full = list(Deblurrer(tiny_model).stream(floats))
    half = list(Deblurrer(tiny_model, strength=0.5).stream(floats))
    for x, y, h in zip(floats, full, half):
        np.testing.assert_allclose(h, x + 0.5 * (y - x), atol=1e-6)
    for tile in (None, 16):
        off = Deblurrer(tiny_model, tile=tile, strength=0)
        assert all(np.array_equal(a, b) for a, b in zip(off.stream(frames), frames))
        assert all(np.array_equal(a, b) for a, b in zip(off.stream(floats), floats))
    changing = Deblurrer(tiny_model)
    outs = [changing.push(floats[0]), changing.push(floats[1])]
    changing.strength = 0.0
    outs += [changing.push(floats[2]), *changing.flush()]
    np.testing.assert_array_equal(outs[1], full[0])
    assert all(np.array_equal(a, b) for a, b in zip(outs[2:], floats[1:]))
    for bad in (-0.1, 1.5, float("nan"), "1", True):
        with pytest.raises(ValueError, match="strength must be a number from 0"):
            Deblurrer(tiny_model, strength=bad)
