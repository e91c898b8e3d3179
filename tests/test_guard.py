"""The guard scales the correction by how blurred the input is, travels in the ONNX graph, stays float in int8,
and is fitted on training clips; the strength control blends input and output in every runtime."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnxruntime as ort  # noqa: E402

from export.fit_guard import FACTORS, fit, guarded_summary  # noqa: E402
from export.guard import GuardConfig, blur_measure  # noqa: E402
from export.model import STRCNN  # noqa: E402
from export.onnx import export, load_checkpoint  # noqa: E402


def textured(seed: int = 0, size=(96, 128)) -> torch.Tensor:
    """A frame [1, 3, H, W] of fine random texture, the kind a blur removes."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((1, 3, *size), dtype=np.float32))


def box_blur(frame: torch.Tensor, length: int) -> torch.Tensor:
    """Horizontal motion blur of `length` pixels."""
    return torch.nn.functional.avg_pool2d(frame, (1, length), stride=1, padding=(0, length // 2),
                                          count_include_pad=False)


def test_the_blur_measure_grows_with_the_blur():
    frame = textured()
    measures = [float(blur_measure(frame if n == 1 else box_blur(frame, n))) for n in (1, 3, 7, 15)]
    assert all(0.0 <= m <= 1.0 for m in measures)
    assert measures == sorted(measures) and measures[-1] - measures[0] > 0.15, measures
    assert float(blur_measure(torch.full((1, 3, 8, 8), 0.5))) == 0.0  # a flat frame has nothing to blur


def test_the_guard_leaves_sharp_input_alone_and_corrects_blurred_input_fully():
    """Below the ramp the output is the centre frame itself; above it, the unguarded network's output."""
    torch.manual_seed(0)
    plain = STRCNN("dtb", m=1, width=8).eval()
    sharp, blurred = textured(), box_blur(textured(), 15)
    low, high = float(blur_measure(sharp)) + 0.01, float(blur_measure(blurred)) - 0.01
    guarded = STRCNN("dtb", m=1, width=8, guard={"low": low, "high": high, "taps": 9}).eval()
    guarded.load_state_dict(plain.state_dict())
    assert guarded.config()["guard"] == {"low": low, "high": high, "taps": 9}
    with torch.no_grad():
        for centre, factor in ((sharp, 0.0), (blurred, 1.0)):
            frames = centre.repeat(1, 3, 1, 1)
            state = plain.init_state(1, *centre.shape[2:])
            want, got = plain(frames, *state)[0], guarded(frames, *state)[0]
            torch.testing.assert_close(got, centre + factor * (want - centre))
            assert (want - centre).abs().max() > 1e-3  # the network does correct this frame


@pytest.mark.parametrize("config", [dict(low=0.5, high=0.5), dict(low=-0.1, high=0.5), dict(low=0.1, high=0.5, taps=4)])
def test_a_guard_that_cannot_work_is_refused(config):
    with pytest.raises(ValueError, match="a guard needs"):
        GuardConfig(**config)


def test_the_guard_travels_in_the_onnx_graph_and_the_sidecar(tmp_path):
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8, guard={"low": 0.2, "high": 0.7, "taps": 5})
    side = export(model, tmp_path / "g.onnx", trained=False)
    assert side["guard"]["low"] == 0.2 and side["guard"]["high"] == 0.7 and side["guard"]["taps"] == 5
    assert side["export_max_abs_error"] <= 1e-4
    assert load_checkpoint(tmp_path / "g.pt").config()["guard"] == {"low": 0.2, "high": 0.7, "taps": 5}
    # the graph scales differently per frame of a batch: a sharp and a blurred frame side by side
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    centres = torch.cat([textured(), box_blur(textured(1), 15)])
    frames = centres.repeat(1, 3, 1, 1).numpy()
    state = [s.numpy() for s in model.init_state(2, 96, 128)]
    got = session.run(["sharp"], {"frames": frames, "F_in": state[0], "h_in": state[1]})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(frames), *map(torch.from_numpy, state))[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_int8_keeps_the_guard_in_float(tmp_path, photos):
    from export.quantize import quantize_int8
    from export.data import Sources

    torch.manual_seed(0)
    export(STRCNN("dtb", m=1, width=8, guard={"low": 0.2, "high": 0.7, "taps": 5}), tmp_path / "g.onnx",
           trained=False)
    quantize_int8(tmp_path / "g.onnx", tmp_path / "g.int8.onnx", Sources.folder(photos, "train"), clips=1,
                  frames=4, size=(32, 48))
    import onnx

    graph = onnx.load(tmp_path / "g.int8.onnx").graph
    quantized = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    guard = [n for n in graph.node if "/guard/" in n.name]
    assert guard and not any(i in quantized for n in guard for i in n.input)
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the network itself is int8


def table(measures: list[float], best: list[float], names: list[str]) -> dict:
    """A frame table of one frame per clip whose error is least at factor `best` (quadratic in the factor)."""
    mse = np.array([[20.0 + 40.0 * (g - b) ** 2 for g in FACTORS] for b in best])
    return {"clip": np.arange(len(best)), "measure": np.array(measures)[:, None], "mse": mse,
            "blurry_db": 10 * np.log10(255.0 ** 2 / mse[:, 0]), "names": np.array(names), "taps": np.array([9])}


def test_the_fit_finds_the_ramp_that_keeps_sharp_clips_and_corrects_blurred_ones():
    """Clips that measure sharp are harmed by the correction, blurred ones helped: the ramp that wins lies between
    them, holds do-no-harm where the unguarded model does not, and keeps every blurred clip's gain."""
    t = table([0.2, 0.25, 0.6, 0.7, 0.8], [0.0, 0.0, 1.0, 1.0, 1.0],
              ["mild_a", "mild_b", "moderate_c", "strong_d", "strong_e"])
    assert not guarded_summary(t, None)["no_harm"]
    config, summary = fit(t, 9, step=0.05)
    assert summary["no_harm"] and 0.25 <= config.low and config.high <= 0.6 + 1e-9
    assert summary["gain"] == pytest.approx(3 / 5 * 10 * np.log10(60 / 20), abs=1e-6)
    assert summary["categories"]["mild"] == pytest.approx(0.0, abs=1e-9)
    assert fit(table([0.2, 0.6], [0.0, 0.0], ["mild_a", "mild_b"]), 9, step=0.05) is not None  # the guard may close
    assert fit(table([0.5, 0.5], [0.0, 1.0], ["mild_a", "strong_b"]), 9, step=0.05)[1]["gain"] < 1.0
