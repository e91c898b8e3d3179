"""The guard scales the correction by the motion the input shows, travels in the ONNX graph, stays float in int8,
and is fitted on training clips."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnxruntime as ort  # noqa: E402

from export.fit_guard import FACTORS, fit, guarded_summary  # noqa: E402
from export.guard import GuardConfig, luma_kernel, motion_measure  # noqa: E402
from export.model import STRCNN  # noqa: E402
from export.onnx import export, load_checkpoint  # noqa: E402


def textured(seed: int = 0, size=(96, 128)) -> torch.Tensor:
    """A frame [1, 3, H, W] of smooth random texture: detail at every scale above a few pixels."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, size[0] // 16, size[1] // 16), dtype=np.float32))
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def window(frame: torch.Tensor, shift: int) -> torch.Tensor:
    """Three frames [1, 9, H, W] of a camera panning `shift` pixels a frame over `frame`."""
    return torch.cat([torch.roll(frame, k * shift, dims=3) for k in (-1, 0, 1)], 1)


def test_the_motion_measure_is_zero_for_a_still_scene_and_grows_with_the_motion():
    frame = textured()
    measures = [float(motion_measure(window(frame, shift), luma_kernel(1))) for shift in (0, 1, 2, 4)]
    assert measures[0] == 0.0
    assert measures == sorted(measures) and measures[1] > 0.1, measures
    flat = torch.full((1, 9, 8, 8), 0.5)
    assert float(motion_measure(flat, luma_kernel(1))) == 0.0  # no detail, no change: nothing to measure


def test_the_guard_leaves_still_input_alone_and_corrects_moving_input_fully():
    """Below the ramp the output is the centre frame itself; above it, the unguarded network's output."""
    torch.manual_seed(0)
    plain = STRCNN("dtb", m=1, width=8).eval()
    still, moving = window(textured(), 0), window(textured(), 8)
    guarded = STRCNN("dtb", m=1, width=8, guard={"low": 0.05, "high": 0.1}).eval()
    guarded.load_state_dict(plain.state_dict())
    assert guarded.config()["guard"] == {"low": 0.05, "high": 0.1}
    assert float(motion_measure(moving, luma_kernel(1))) > 0.1
    with torch.no_grad():
        for frames, factor in ((still, 0.0), (moving, 1.0)):
            centre, state = frames[:, 3:6], plain.init_state(1, *frames.shape[2:])
            want, got = plain(frames, *state)[0], guarded(frames, *state)[0]
            torch.testing.assert_close(got, centre + factor * (want - centre))
            assert (want - centre).abs().max() > 1e-3  # the network does correct this frame


@pytest.mark.parametrize("config", [dict(low=0.5, high=0.5), dict(low=-0.1, high=0.5)])
def test_a_guard_that_cannot_work_is_refused(config):
    with pytest.raises(ValueError, match="a guard needs"):
        GuardConfig(**config)
    with pytest.raises(ValueError, match="a guard needs m >= 1"):
        STRCNN("dtb", m=0, width=8, guard={"low": 0.1, "high": 0.5})


def test_the_guard_travels_in_the_onnx_graph_and_the_sidecar(tmp_path):
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8, guard={"low": 0.05, "high": 0.3})
    side = export(model, tmp_path / "g.onnx", trained=False)
    assert side["guard"]["low"] == 0.05 and side["guard"]["high"] == 0.3 and "motion" in side["guard"]["factor"]
    assert side["export_max_abs_error"] <= 1e-4
    assert load_checkpoint(tmp_path / "g.pt").config()["guard"] == {"low": 0.05, "high": 0.3}
    # the graph scales each stream of a batch by its own factor: a still and a panning window side by side
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    frames = torch.cat([window(textured(), 0), window(textured(1), 2)]).numpy()
    state = [s.numpy() for s in model.init_state(2, 96, 128)]
    got = session.run(["sharp"], {"frames": frames, "F_in": state[0], "h_in": state[1]})[0]
    np.testing.assert_array_equal(got[0], frames[0, 3:6])  # still: the centre frame, bit for bit
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(frames), *map(torch.from_numpy, state))[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got[1] - frames[1, 3:6]).max() > 1e-3


def test_int8_keeps_the_guard_in_float(tmp_path, photos):
    from export.quantize import quantize_int8
    from export.data import Sources

    torch.manual_seed(0)
    export(STRCNN("dtb", m=1, width=8, guard={"low": 0.05, "high": 0.3}), tmp_path / "g.onnx", trained=False)
    quantize_int8(tmp_path / "g.onnx", tmp_path / "g.int8.onnx", Sources.folder(photos, "train"), clips=1,
                  frames=4, size=(32, 48))
    import onnx

    graph = onnx.load(tmp_path / "g.int8.onnx").graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    guard = [n for n in graph.node if "/guard/" in n.name]
    assert guard and not any(i in dequantized for n in guard for i in n.input)
    assert {n.op_type for n in graph.node if "frames" in n.input} == {"QuantizeLinear", "Conv", "Slice"}
    assert any(n.op_type == "QLinearConv" or n.op_type == "QuantizeLinear" for n in graph.node)  # the network is int8


def table(measures: list[float], best: list[float], names: list[str]) -> dict:
    """A frame table of one frame per clip whose error is least at factor `best` (quadratic in the factor)."""
    mse = np.array([[20.0 + 40.0 * (g - b) ** 2 for g in FACTORS] for b in best])
    return {"clip": np.arange(len(best)), "measure": np.array(measures), "mse": mse,
            "blurry_db": 10 * np.log10(255.0 ** 2 / mse[:, 0]), "names": np.array(names)}


def test_the_fit_finds_the_ramp_that_keeps_still_clips_and_corrects_moving_ones():
    """Clips with little motion are harmed by the correction, moving ones helped: the ramp that wins lies between
    them, holds do-no-harm where the unguarded model does not, and keeps every moving clip's gain."""
    t = table([0.2, 0.25, 0.6, 0.7, 0.8], [0.0, 0.0, 1.0, 1.0, 1.0],
              ["mild_a", "mild_b", "moderate_c", "strong_d", "strong_e"])
    assert not guarded_summary(t, None)["no_harm"]
    config, summary = fit(t, step=0.05)
    assert summary["no_harm"] and 0.25 <= config.low and config.high <= 0.6 + 1e-9
    assert summary["gain"] == pytest.approx(3 / 5 * 10 * np.log10(60 / 20), abs=1e-6)
    assert summary["categories"]["mild"] == pytest.approx(0.0, abs=1e-9)
    assert fit(table([0.2, 0.6], [0.0, 0.0], ["mild_a", "mild_b"]), step=0.05) is not None  # the guard may close
    # where the measure cannot tell harmed from helped clips, the guard holds the rule only by giving up gain
    assert fit(table([0.5, 0.5], [0.0, 1.0], ["mild_a", "strong_b"]), step=0.05)[1]["gain"] < 1.0


def test_the_fit_command_writes_a_guarded_checkpoint_from_training_clips(tmp_path, photos, capsys):
    """`python -m export.fit_guard` tables the training clips (kept for reuse) and the validation set, prints both
    with and without the guard, and writes the checkpoint with the ramp it found; a guarded one is refused."""
    from export.fit_guard import main
    from export.onnx import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(STRCNN("dtb", m=1, width=8), tmp_path / "net.pt")
    main([str(tmp_path / "net.pt"), "--photos", str(photos), "--clips", "2", "--threads", "1",
          "--table", str(tmp_path / "table.npz"), "--out", str(tmp_path / "guarded.pt")])
    out = capsys.readouterr().out
    assert "6 training clips, 6 validation clips" in out and "no guard: training gain" in out
    assert "guard low" in out and "validation gain" in out
    guard = load_checkpoint(tmp_path / "guarded.pt").config()["guard"]
    assert 0 <= guard["low"] < guard["high"]
    assert (tmp_path / "table.npz").is_file() and (tmp_path / "table.validation.npz").is_file()
    with pytest.raises(SystemExit, match="already has a guard"):
        main([str(tmp_path / "guarded.pt"), "--photos", str(photos)])
