"""The exporter writes the ONNX contract to the letter, checks itself, and refuses what fails."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import onnxruntime as ort  # noqa: E402

from export.__main__ import main as export_main  # noqa: E402
from export.model import STRCNN, VARIANTS  # noqa: E402
from export.onnx import export, load_checkpoint  # noqa: E402


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("variant", VARIANTS)
def test_contract_names_dims_opset_metadata(tmp_path, variant):
    torch.manual_seed(1)
    path = tmp_path / f"{variant}.onnx"
    side = export(STRCNN(variant, m=1, width=8), path, trained=False)
    proto = onnx.load(path)
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    inputs = {i.name: dims(i) for i in proto.graph.input}
    outputs = {o.name: dims(o) for o in proto.graph.output}
    assert inputs == {"frames": ["N", 9, "H", "W"], "F_in": ["N", 4, "H2", "W2"], "h_in": ["N", 8, "H2", "W2"]}
    assert outputs == {"sharp": ["N", 3, "H", "W"], "F_out": ["N", 4, "H2", "W2"],
                       "h_out": ["N", 8, "H2", "W2"]}
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar == side
    metadata = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert metadata == {k: v for k, v in sidecar.items() if k not in ("onnx_sha256", "export_max_abs_error")}
    assert sidecar["variant"] == variant and sidecar["trained"] is False and sidecar["opset"] == 17
    assert sidecar["export_max_abs_error"] <= 1e-4


def test_channel_order_oldest_first_rgb(tmp_path):
    """frames channel 3k+c is frame k (oldest first), colour c: with a residual cnn whose decoder is zeroed,
    the output is exactly the centre frame, channels 3..5."""
    model = STRCNN("cnn", m=1, width=8, residual=True)
    torch.nn.init.zeros_(model.out_conv.weight)
    torch.nn.init.zeros_(model.out_conv.bias)
    path = tmp_path / "id.onnx"
    export(model, path, trained=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).random((1, 9, 6, 8), dtype=np.float32)
    state = [np.zeros((1, 4, 3, 4), np.float32), np.zeros((1, 8, 3, 4), np.float32)]
    sharp = session.run(["sharp"], {"frames": frames, "F_in": state[0], "h_in": state[1]})[0]
    np.testing.assert_array_equal(sharp, frames[:, 3:6])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m, width", [(0, 4), (1, 8), (2, 6)])
def test_half_resolution_computes_the_same_function(variant, m, width):
    """The rewrite the exporter traces gives the network's own outputs and states, to float64 rounding, over
    recurrent steps, for every variant, radius and width, with weights far from the identity."""
    from export.phases import half_resolution

    torch.manual_seed(m)
    model = STRCNN(variant, m=m, width=width).double().eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    rewritten = half_resolution(model)
    state = [torch.rand_like(s) for s in model.init_state(2, 14, 10, dtype=torch.float64)]
    ours = theirs = state
    for _ in range(3):
        frames = torch.rand(2, 3 * (2 * m + 1), 14, 10, dtype=torch.float64)
        with torch.no_grad():
            expected, got = model(frames, *theirs), rewritten(frames, *ours)
        for e, g in zip(expected, got):
            assert e.shape == g.shape and (e - g).abs().max() <= 1e-12 * e.abs().max()
        theirs, ours = expected[1:], got[1:]


def test_the_exported_graph_works_at_half_resolution(tmp_path):
    """No transposed convolution, and every convolution's output is at half resolution: full resolution is
    touched only by the input's first convolution (stride 2), the output's pixel shuffle and the residual."""
    from onnx import shape_inference

    export(STRCNN("dtb", m=1, width=8), tmp_path / "m.onnx", trained=False)
    proto = onnx.load(tmp_path / "m.onnx")
    sizes = {"N": 1, "H": 64, "W": 96, "H2": 32, "W2": 48}
    for value in proto.graph.input:  # fixed sizes, so that shape inference gives numbers
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_value = sizes[dim.dim_param]
    inferred = shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    ops = [node.op_type for node in proto.graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 1
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    assert convs and all(shapes[node.output[0]][2:] == [32, 48] for node in convs)


def test_refuses_to_write_a_file_that_fails_its_check(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(RuntimeError, match="not written"):
        export(STRCNN("dtb", width=8), path, trained=False, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_tiny_weights_are_written_as_zero(tmp_path, capsys):
    """A checkpoint with weights below 1e-12 (they make fp32 arithmetic denormal, and slow) exports with none: the
    .onnx and the .pt beside it hold zeros there, the count is printed, and the caller's model is untouched."""
    torch.manual_seed(3)
    model = STRCNN("dtb", m=1, width=8)
    with torch.no_grad():
        model.encoder[0].conv1.weight[:2] = 1e-30  # denormal in fp32
        model.decoder[3].conv2.weight[0, 0] = -3e-13
        model.in_conv.bias[1] = 5e-20
    planted = 2 * 8 * 9 + 9 + 1
    path = tmp_path / "m.onnx"
    export(model, path, trained=False)
    assert f"set {planted} of" in capsys.readouterr().out
    weights = np.concatenate([onnx.numpy_helper.to_array(t).ravel() for t in onnx.load(path).graph.initializer
                              if t.data_type == onnx.TensorProto.FLOAT])
    assert not np.any((np.abs(weights) < 1e-12) & (weights != 0))
    saved = torch.load(path.with_suffix(".pt"), weights_only=True)["state_dict"]
    assert float(saved["encoder.0.conv1.weight"][:2].abs().max()) == 0.0
    assert model.encoder[0].conv1.weight[0, 0, 0, 0].item() != 0.0  # the caller's model keeps its weights


def test_checkpoint_loads_weights_only_and_round_trips(tmp_path):
    torch.manual_seed(2)
    model = STRCNN("strcnn", m=2, width=8, residual=False)
    path = tmp_path / "m.onnx"
    export(model, path, trained=False)
    data = torch.load(path.with_suffix(".pt"), weights_only=True)
    assert set(data) == {"config", "state_dict"}
    assert data["config"] == {"variant": "strcnn", "m": 2, "width": 8, "residual": False}
    again = load_checkpoint(path.with_suffix(".pt"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_command_line_from_checkpoint_marks_trained(tmp_path, capsys):
    export_main(["--random", "--width", "8", "--out", str(tmp_path / "r.onnx")])
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"training": {"steps": 3}, "quality": {"heldout_psnr_gain_db": 0.1}}))
    export_main(["--checkpoint", str(tmp_path / "r.pt"), "--card", str(card), "--out", str(tmp_path / "t.onnx")])
    assert "max abs difference" in capsys.readouterr().out
    side = json.loads((tmp_path / "t.json").read_text())
    assert side["trained"] is True and side["training"] == {"steps": 3}
    assert json.loads((tmp_path / "r.json").read_text())["trained"] is False


@pytest.mark.parametrize("name", ["full", "fast"])
def test_shipped_models_follow_the_contract(name):
    """Each shipped model's files agree: the sidecar names the file and the checkpoint it came from, guard
    included; the fast model is the narrower network."""
    from strcnn_sdk.model import shipped_model_path, shipped_models

    path = shipped_model_path(name=name)
    side = json.loads(path.with_suffix(".json").read_text())
    assert path.name == shipped_models()[name]["file"] and path.with_name(shipped_models()[name]["card"]).is_file()
    assert side["format"] == "strcnn-onnx/1" and side["opset"] == 17 and side["name"] == path.stem
    model = load_checkpoint(path.with_suffix(".pt"))
    config = {k: side[k] for k in ("variant", "m", "width", "residual")}
    if side.get("guard"):
        config["guard"] = {k: side["guard"][k] for k in ("low", "high")}
    assert model.config() == config
    assert side["width"] == {"full": 64, "fast": 32}[name]


def test_int8_and_fp16_variants_follow_the_contract_and_stay_close(tmp_path, photos):
    import warnings

    from export.data import Sources
    from export.quantize import convert_fp16, quantize_int8
    from strcnn_sdk import Deblurrer, Model, UntrainedModelWarning

    torch.manual_seed(3)
    path = tmp_path / "m.onnx"
    export(STRCNN("dtb", m=1, width=8), path, trained=False)
    quantize_int8(path, tmp_path / "m.int8.onnx", Sources.folder(photos, "train"), clips=2, frames=4, size=(32, 48))
    convert_fp16(path, tmp_path / "m.fp16.onnx")
    clip = np.random.default_rng(0).random((4, 20, 26, 3), dtype=np.float32)
    outputs = {}
    for precision in ("", ".int8", ".fp16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedModelWarning)
            model = Model(tmp_path / f"m{precision}.onnx", providers="cpu")
        assert model.meta["precision"] == (precision[1:] or "fp32")
        assert json.loads(onnx.load(model.path).metadata_props[0].value) is not None
        deblurrer = Deblurrer(model)
        outputs[precision] = np.stack(list(deblurrer.stream(clip)))
    assert np.abs(outputs[".fp16"] - outputs[""]).max() < 1e-2
    assert np.abs(outputs[".int8"] - outputs[""]).mean() < 2e-2
    assert not np.array_equal(outputs[".int8"], outputs[""])  # it really is another graph


def test_pytorch_baselines_print_beside_the_sdk(capsys):
    from export.bench import main as bench_main

    bench_main(["--sizes", "32x24", "--runs", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "PyTorch eager fp32" in out and "PyTorch bf16 autocast" in out and "strcnn-sdk ONNX Runtime fp32" in out
    assert "the default here" in out and "cpu:" in out


def test_quality_is_measured_into_the_sidecar_with_a_variants_gap_to_fp32(tmp_path, capsys, photos):
    """`python -m export.quality`: the test set scored by the runtime under the do-no-harm rule, written into each
    sidecar (with --photos, the validation set and the natural photographs too); a variant's sidecar compares its
    gain with the fp32 model's beside it."""
    import shutil
    import warnings

    from export.quality import main as quality_main
    from strcnn_sdk.metrics import describe_quality

    torch.manual_seed(0)
    fp32 = tmp_path / "m.onnx"
    export(STRCNN("dtb", m=1, width=8), fp32, trained=False)
    variant = tmp_path / "m.int8.onnx"  # the fp32 graph under a variant's name: the comparison is what is tested
    shutil.copy(fp32, variant)
    old = {"test": {"no_harm": False, "harm": ["figures of weights since replaced"]}}  # stale figures that fail
    variant.with_suffix(".json").write_text(json.dumps(dict(json.loads(fp32.with_suffix(".json").read_text()),
                                                            precision="int8", trained=True, quality=old)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quality_main([str(fp32), str(variant), "--photos", str(photos)])
    assert not [w for w in caught if "figures of weights since replaced" in str(w.message)]  # measured, not warned
    side, other = (json.loads(p.with_suffix(".json").read_text()) for p in (fp32, variant))
    test = side["quality"]["test"]
    assert test["clips"] + test["near_sharp_clips"] == 24 and test["no_harm"] == (not test["harm"])
    assert side["quality"]["validation"]["clips"] == 5 and side["quality"]["natural"]["clips"] == 2
    assert "natural photographs" in describe_quality(side["quality"])
    assert "quality_vs_fp32" not in side and other["quality_vs_fp32"]["loss_db"] == 0.0
    assert describe_quality(side["quality"]) in capsys.readouterr().out


def test_a_missing_or_unreadable_checkpoint_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no such checkpoint.*last.pt is always there"):
        export_main(["--checkpoint", str(tmp_path / "best.pt"), "--out", str(tmp_path / "m.onnx")])
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="not a checkpoint torch.load can read"):
        export_main(["--checkpoint", str(tmp_path / "notes.pt"), "--out", str(tmp_path / "m.onnx")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]
