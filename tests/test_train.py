"""Training learns, runs, resumes exactly, keeps its recipe, runs where PyAV is absent, and its checkpoint exports
to a model the runtime loads."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from export import data  # noqa: E402
from export.__main__ import main as export_main  # noqa: E402
from export.compare import at_hours, judge, main as compare_main  # noqa: E402
from export.curve import draw, draw_runs, read_log  # noqa: E402
from export.health import Firing, census, dead_channels  # noqa: E402
from export.model import STRCNN  # noqa: E402
from export import train as train_module  # noqa: E402
from export.onnx import load_checkpoint, save_torch  # noqa: E402
from export.photos import LATEST  # noqa: E402
from export.train import (LOSSES, WEIGHT_DECAY, Averaged, charbonnier, main as train_main,  # noqa: E402
                          make_optimizer, train_step)
from strcnn_sdk import Deblurrer, UntrainedModelWarning  # noqa: E402
from strcnn_sdk.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.mp4"
TINY = ["--preset", "cpu", "--width", "8", "--batch", "2", "--frames", "4", "--patch", "16", "--threads", "1",
        "--precision", "fp32", "--synthesis", "numpy", "--eval-every", "2"]


def tiny(photos, out) -> list[str]:
    return [*TINY, "--photos", str(photos), "--out", str(out)]


@pytest.fixture(autouse=True)
def tiny_shipped_model(tmp_path_factory, monkeypatch):
    """A width-8 checkpoint as the shipped model that runs measure themselves against (the real one is width 64)."""
    path = tmp_path_factory.getbasetemp() / "shipped.pt"
    if not path.is_file():
        torch.manual_seed(1)
        model = STRCNN("dtb", m=1, width=8)
        save_torch(path, {"config": model.config(), "state_dict": model.state_dict()})
    monkeypatch.setattr(train_module, "SHIPPED", path)
    return path


@pytest.mark.parametrize("loss", LOSSES)
def test_a_fixed_batch_is_learned(photos, loss):
    """The optimiser really optimises, with every loss: 40 steps on one batch halve its MSE."""
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=16)
    optimizer = make_optimizer(model, {"lr": 2e-3, "weight_decay": WEIGHT_DECAY})
    blurry, sharp = data.synthetic_batch(data.Sources.folder(photos, "train"), 0, 0, 2, 4, (24, 24))
    mse = [train_step(model, optimizer, blurry, sharp, "fp32", loss)[1] for _ in range(40)]
    assert mse[-1] < 0.5 * mse[0], mse


def test_the_harm_term_charges_only_pixels_made_worse_than_the_input(photos):
    """An identity network (the residual start) harms nothing, so the term adds 0; a network that moves every
    pixel away from its input pays for the pixels it moves away from the target."""
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8)
    torch.nn.init.zeros_(model.out_conv.weight)
    torch.nn.init.zeros_(model.out_conv.bias)
    blurry, sharp = data.synthetic_batch(data.Sources.folder(photos, "train"), 0, 0, 2, 4, (16, 16))

    def losses(harm: float) -> float:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # measure without moving the weights
        return train_step(model, optimizer, blurry, sharp, "fp32", "mse", harm)[0]

    assert losses(10.0) == losses(0.0)
    with torch.no_grad():
        model.out_conv.bias.fill_(0.2)  # every output 0.2 brighter than its input
    out, target, given = blurry[:, 1:3] + 0.2, sharp[:, 1:3], blurry[:, 1:3]
    expected = torch.relu((out - target) ** 2 - (given - target) ** 2).mean().item()
    assert expected > 0 and losses(10.0) - losses(0.0) == pytest.approx(10 * expected, rel=1e-4)


def test_the_border_is_left_out_of_the_loss(photos):
    """With --border B the loss is the interior's: an output wrong only in the B pixels at the sides costs
    nothing, and one wrong inside costs what the interior's mean says."""
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8)
    torch.nn.init.zeros_(model.out_conv.weight)
    torch.nn.init.zeros_(model.out_conv.bias)
    blurry, _ = data.synthetic_batch(data.Sources.folder(photos, "train"), 0, 0, 2, 4, (16, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    target = blurry.clone()  # the identity network's output is its input: no loss but where the target differs
    target[..., :3, :] += 0.5  # wrong in the top three rows
    assert train_step(model, optimizer, blurry, target, "fp32", border=3)[0] == 0.0
    assert train_step(model, optimizer, blurry, target, "fp32", border=2)[0] == pytest.approx(0.25 / 12, rel=1e-5)


def test_the_annealed_rate_falls_to_zero_along_half_a_cosine():
    recipe = {"lr": 1e-3, "warmup": 0, "decay_rate": 0.5, "decay_every": 100, "anneal": [100, 300]}
    assert train_module.lr_at(recipe, 50) == pytest.approx(1e-3 * 0.5 ** 0.5)  # before the arm: the decay
    assert train_module.lr_at(recipe, 100) == pytest.approx(5e-4)
    assert train_module.lr_at(recipe, 200) == pytest.approx(2.5e-4)  # halfway: half the rate it started at
    assert train_module.lr_at(recipe, 300) == train_module.lr_at(recipe, 400) == 0.0


def test_an_arm_logs_the_natural_set_and_real_pairs_and_compares_on_its_one_evaluation(photos, tmp_path, capsys):
    """An arm (--anneal, --border) keeps them in its recipe; every evaluation logs the natural photographs and the
    real pairs of --gopro beside validation; `export.compare --last 1` judges it on its one evaluation."""
    rng = np.random.default_rng(0)
    pairs = tmp_path / "pairs"
    blurry, sharp = data.render_clip(rng, data.Sources.folder(photos, "train"), 1, (32, 48),
                                     data.CATEGORIES["strong"])
    data.write_gopro_layout(pairs, [("Street", blurry, sharp)])
    out = tmp_path / "arm"
    train_main([*tiny(photos, out), "--steps", "2", "--anneal", "2", "--border", "2", "--gopro", str(pairs)])
    recipe = torch.load(out / "last.pt", weights_only=True)["recipe"]
    assert recipe["anneal"] == [0, 2] and recipe["border"] == 2 and recipe["collection"] == LATEST  # a new run
    log = (out / "log.txt").read_text()
    assert " h natural gain " in log and " h validation gain " in log
    assert " h gopro gain " in log and "(the network alone)" in log and "over 1 clips" in log
    compare_main(["--last", "1", str(out / "log.txt")])
    printed = capsys.readouterr().out
    assert "| natural gain | test gain | GoPro gain |" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| arm |"))
    assert row.count(" dB") == 4 and "| - |" not in row and "| 1 of 1 |" in row  # validation, natural, test, GoPro


def test_a_run_goes_on_with_more_frames_computing_what_it_did(photos, tmp_path):
    """`widen` gives a checkpoint of m=1 the paper's m=2 with zero weights for the outer frames: the same output
    from the same centre three frames; a run resumed with --m 2 trains on from there, and fewer frames are refused."""
    torch.manual_seed(0)
    narrow = STRCNN("dtb", m=1, width=8)
    wide = STRCNN("dtb", m=2, width=8)
    wide.load_state_dict(train_module.widen(narrow.state_dict(), 1, 2))
    clip = torch.rand(1, 7, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(narrow.run(clip[:, 1:6])[0], wide.run(clip)[0], atol=1e-6)
    train_main([*tiny(photos, tmp_path / "run"), "--steps", "2", "--ema", "0.9"])
    train_main([*tiny(photos, tmp_path / "run"), "--steps", "2", "--resume", "--m", "2", "--frames", "6"])
    checkpoint = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 4 and checkpoint["config"]["m"] == 2
    assert checkpoint["state_dict"]["in_conv.weight"].shape[1] == 15
    with pytest.raises(SystemExit, match="cannot go on with fewer frames"):
        train_main([*tiny(photos, tmp_path / "run"), "--steps", "1", "--resume", "--m", "1"])


def test_charbonnier_is_l1_with_a_rounded_minimum():
    far, near = torch.tensor([0.5, -0.5]), torch.tensor([0.0, 0.0])
    assert charbonnier(far, near).item() == pytest.approx(0.5, rel=1e-5)
    assert charbonnier(near, near).item() == pytest.approx(1e-3)  # eps at zero: the gradient is smooth there


def test_the_moving_average_follows_the_weights():
    """Decay 0.5 after its ramp: average = mean of the old average and the new weights; the ramp's first
    update, (1 + 1) / (10 + 1), keeps 2/11 of the start."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    averaged = Averaged(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    averaged.update(model)
    assert averaged.model.weight.item() == pytest.approx(2 / 11 * 1 + 9 / 11 * 3)
    averaged.updates = 100  # ramp over: the decay itself
    start = averaged.model.weight.item()
    averaged.update(model)
    assert averaged.model.weight.item() == pytest.approx(0.5 * start + 0.5 * 3)
    assert model.weight.item() == 3.0  # the trained weights are untouched


def test_an_inactive_channel_keeps_its_weights(photos):
    """A ReLU channel that does not fire gets no data gradient. The optimiser must leave it alone, so that it can
    fire again later: Adam with an L2 term drives such weights to zero at about the learning rate per step. A
    constant learning rate (a warm-up would hide the decay), the real training step, 300 steps."""
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8)
    with torch.no_grad():
        model.in_conv.bias[0] = -100.0  # inputs lie in [0, 1] and weights near 0.07: channel 0 never fires
    before = model.in_conv.weight.detach().clone()
    optimizer = make_optimizer(model, {"lr": 5e-4, "weight_decay": WEIGHT_DECAY})
    blurry, sharp = data.synthetic_batch(data.Sources.folder(photos, "train"), 0, 0, 1, 3, (16, 16))
    for _ in range(300):
        train_step(model, optimizer, blurry, sharp, "fp32")
    after = model.in_conv.weight.detach()
    assert after[0].norm() > 0.99 * before[0].norm() and dead_channels(model)["in_conv"] == (0, 8)
    assert not torch.allclose(after[1:], before[1:])  # the other channels did train


def test_health_counts_dead_and_silent_channels():
    torch.manual_seed(0)
    model = STRCNN("dtb", m=1, width=8)
    with torch.no_grad():
        model.encoder[0].conv1.weight[:3] = 0.0  # three dead channels
        model.encoder[0].conv1.bias[:3] = 0.0
        model.up.weight[:, 5] = 0.0  # a ConvTranspose's output channels are dimension 1
        model.up.bias[5] = 0.0
        model.down.bias[0] = -100.0  # alive, but silent on any input in [0, 1]
    assert dead_channels(model)["encoder.0.conv1"] == (3, 8) and dead_channels(model)["up"] == (1, 8)
    assert dead_channels(model)["down"] == (0, 4)
    with Firing(model) as firing:
        model.run(torch.rand(1, 4, 3, 16, 16))
    silent = firing.silent()
    assert silent["down"][0] >= 1 and silent["encoder.0.conv1"][0] >= 3 and set(silent) == set(dead_channels(model))
    health = census(model, firing)
    layers = 2 * 4 * 8 + 8 + 4 + 4 + 8  # ResBlocks' conv1, in_conv, down, f_head, up
    assert health.dead == pytest.approx(4 / layers) and health.silent >= 5 / layers and health.tiny > 0
    assert census(model).silent is None and not census(model).warning  # 4.5% dead, silence not measured
    with torch.no_grad():
        model.decoder[1].conv1.weight.zero_()
        model.decoder[1].conv1.bias.zero_()
    assert census(model).warning and "HEALTH WARNING" in census(model).describe()


def test_resuming_another_optimisers_checkpoint_is_refused(photos, tmp_path):
    """A checkpoint of the old trainer (Adam with coupled L2 decay, no optimizer in its recipe) does not resume;
    --init still starts a new run from its weights."""
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--steps", "1", "--eval-every", "100"])
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["recipe"]["optimizer"] == "adamw"
    del checkpoint["recipe"]["optimizer"], checkpoint["recipe"]["weight_decay"]
    torch.save(checkpoint, out / "last.pt")
    with pytest.raises(SystemExit, match="trained with adam with coupled L2 weight decay.*--init"):
        train_main([*tiny(photos, out), "--steps", "1", "--resume"])
    train_main([*tiny(photos, tmp_path / "new"), "--steps", "1", "--eval-every", "100", "--init", str(out / "last.pt")])
    assert torch.load(tmp_path / "new" / "last.pt", weights_only=True)["recipe"]["optimizer"] == "adamw"


def test_train_resume_export_and_run(photos, tmp_path):
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--steps", "2"])
    first = torch.load(out / "last.pt", weights_only=True)
    assert first["step"] == 2 and (out / "best.pt").exists() == (first["best_gain"] > -np.inf)
    train_main([*tiny(photos, out), "--steps", "1", "--resume"])
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert resumed["step"] == 3 and resumed["elapsed_s"] >= first["elapsed_s"]
    log = (out / "log.txt").read_text()
    assert "start step 2" in log and "validation gain" in log and "test gain" in log and "data" in log
    assert log.count("health: dead channels") == 6  # on each evaluation line: validation, natural and test, twice
    assert log.count(" h natural gain ") == 2
    assert "shipped model (" in log and log.count("shipping rule: ") == 2
    shipping = [line for line in log.splitlines() if "shipping rule: " in line]
    assert all(line.split("rule: ")[1].startswith(("ships", "does not ship")) for line in shipping)
    assert (out / "best.pt").exists() == any("rule: ships" in line for line in shipping)
    legs, figures = read_log(out / "log.txt")
    assert [leg["device"] for leg in legs] == ["cpu", "cpu"] and legs[1]["hours"] >= legs[0]["hours"] == 0
    assert len(figures["validation"]) == len(figures["test"]) == len(figures["dead"]) == log.count(" h validation gain") == 2
    assert draw(out / "log.txt", tmp_path / "curve.png") == figures and (tmp_path / "curve.png").stat().st_size

    export_main(["--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "mine.onnx")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # a checkpoint export counts as trained
        deblurrer = Deblurrer(tmp_path / "mine.onnx")
    frames = [np.full((10, 12, 3), 128, np.uint8)] * 3
    outs = [deblurrer.push(f) for f in frames] + deblurrer.flush()
    assert [o.shape for o in outs if o is not None] == [(10, 12, 3)] * 3

    result = CliRunner().invoke(app, ["deblur", str(SAMPLE), str(tmp_path / "out.mp4"), "--model",
                                      str(tmp_path / "mine.onnx"), "--quiet"])
    assert result.exit_code == 0 and "UNTRAINED" not in result.output, result.output
    assert (tmp_path / "out.mp4").stat().st_size > 0


@pytest.mark.parametrize("ema", ["0", "0.9"])
def test_resume_equals_an_uninterrupted_run_bit_for_bit(photos, tmp_path, ema):
    """Stopped at step 2 and resumed to 4 (fp32, CPU): model, moving average, optimiser state and data stream as
    if never stopped."""
    options = ["--eval-every", "100", "--ema", ema]
    train_main([*tiny(photos, tmp_path / "whole"), "--steps", "4", *options])
    train_main([*tiny(photos, tmp_path / "split"), "--steps", "2", *options])
    train_main([*tiny(photos, tmp_path / "split"), "--steps", "2", *options[:2], "--resume"])
    whole, split = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in ("whole", "split"))
    assert whole["step"] == split["step"] == 4
    assert ("training_state_dict" in whole) == (ema != "0")  # with an average, state_dict holds it
    for weights in ("state_dict", "training_state_dict")[:1 + (ema != "0")]:
        for key, value in whole[weights].items():
            assert torch.equal(value, split[weights][key]), (weights, key)
    for key, state in whole["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, split["optimizer"]["state"][key][name]), (key, name)
    assert whole["recipe"] == split["recipe"]


def test_the_average_is_what_is_evaluated_exported_and_compared(photos, tmp_path, capsys):
    """With --ema, checkpoints export the averaged weights, which are what the log evaluates, another loss is
    named in the loss lines, and `export.compare` judges the run on its last three evaluations (a log that also
    has the trained weights' validation lines, as older runs do, gets a row for them)."""
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--steps", "3", "--eval-every", "1", "--ema", "0.9", "--loss", "charbonnier",
                "--log-every", "1"])
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["recipe"]["ema"] == 0.9 and checkpoint["recipe"]["loss"] == "charbonnier"
    assert checkpoint["ema_updates"] == 3
    exported = load_checkpoint(out / "last.pt").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in checkpoint["state_dict"].items())
    assert not all(torch.equal(checkpoint["training_state_dict"][k], v) for k, v in checkpoint["state_dict"].items())
    log = (out / "log.txt").read_text()
    assert "step 3 charbonnier loss" in log and "PSNR" in log
    assert "validation (training weights)" not in log and log.count(" h validation gain") == 3
    assert len(read_log(out / "log.txt")[1]["validation"]) == 3

    gains = [float(line.split(" gain ")[1].split(" dB")[0])
             for line in log.splitlines() if " h validation gain" in line]
    older = "".join(line + "\n" + line.replace(" h validation gain", " h validation (training weights) gain") + "\n"
                    if " h validation gain" in line else line + "\n" for line in log.splitlines())
    (out / "log.txt").write_text(older)
    rows = judge(out / "log.txt")
    assert [r["run"] for r in rows] == ["run", "run (trained weights)"] and rows[0]["steps"] == [1, 2, 3]
    assert rows[0]["gain"] == pytest.approx(sum(gains) / 3) and rows[0]["low"] == min(gains)
    compare_main([str(out / "log.txt")])
    assert f"| run | 1, 2, 3 | {sum(gains) / 3:+.3f} dB" in capsys.readouterr().out
    train_main([*tiny(photos, tmp_path / "short"), "--steps", "2"])  # one evaluation: not enough to judge
    compare_main([str(out / "log.txt"), str(tmp_path / "short" / "log.txt")])  # the young run is left out
    printed = capsys.readouterr()
    assert "| run | 1, 2, 3 |" in printed.out and "1 validation evaluations; judging a run needs its last 3" in printed.err
    with pytest.raises(SystemExit, match="no run to compare"):
        compare_main([str(tmp_path / "short" / "log.txt")])
    train_main([*tiny(photos, tmp_path / "short"), "--steps", "4", "--ema", "0.9", "--resume"])  # averaged later
    assert [r["run"] for r in judge(tmp_path / "short" / "log.txt")] == ["short"]


def test_runs_compare_at_equal_training_hours(tmp_path, capsys):
    """`export.compare --hours` reads each run's validation gain at equal training hours, interpolated between its
    evaluations: a run of cheap steps and one of dear steps meet at the hours, not at the steps."""
    logs = []
    for name, points in (("narrow", [(1000, 0.5, 0.10), (2000, 1.0, 0.30)]), ("wide", [(400, 0.25, 0.0),
                                                                                      (1200, 0.75, 0.40)])):
        (tmp_path / name).mkdir()
        logs.append(tmp_path / name / "log.txt")
        logs[-1].write_text("".join(f"2026-12-04 10:00:00 step {step} {hours:.3f} h validation gain {gain:+.3f} dB, "
                                    "mild +0.000, worst clip x +0.000 dB\n" for step, hours, gain in points))
    assert at_hours(logs[0], [0.25, 0.5, 0.75, 1.0, 1.25]) == [None, 0.1, pytest.approx(0.2), 0.3, None]
    assert at_hours(logs[1], [0.5]) == [pytest.approx(0.2)]
    compare_main(["--hours", "0.5", *map(str, logs)])
    printed = capsys.readouterr().out
    assert "| run | 0.5 h | 1 h | last evaluation |" in printed
    assert "| narrow | +0.100 | +0.300 | step 2,000, 1.00 h |" in printed and "| wide | +0.200 | - |" in printed
    with pytest.raises(SystemExit, match="after 2 training hours"):
        compare_main(["--hours", "2", str(logs[1])])
    assert draw_runs(logs, tmp_path / "arms.png") == {"narrow": [(0.5, 0.1, 1000), (1.0, 0.3, 2000)],
                                                      "wide": [(0.25, 0.0, 400), (0.75, 0.4, 1200)]}
    assert (tmp_path / "arms.png").stat().st_size > 10_000


def test_the_shipped_models_bar_is_scored_once_per_key(photos, tmp_path):
    """The shipping rule's bar is kept in the run folder: a start with the same checkpoint, clips, device and torch
    reads it back (figures planted in it show in the log); a start with another key scores the model again. With
    --no-test the run is evaluated on validation alone."""
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--steps", "1", "--no-test"])
    assert " h validation gain" in (out / "log.txt").read_text() and " h test " not in (out / "log.txt").read_text()
    cache = out / "shipped-bar.json"
    kept = json.loads(cache.read_text())
    scored = kept["figures"]["gain"]
    kept["figures"]["gain"] = 9.875
    cache.write_text(json.dumps(kept))
    train_main([*tiny(photos, out), "--steps", "2", "--resume"])
    bar_lines = [line for line in (out / "log.txt").read_text().splitlines() if "shipped model (" in line]
    assert "gain +9.875 dB" in bar_lines[-1]
    kept["key"]["torch"] = "another release"
    cache.write_text(json.dumps(kept))
    train_main([*tiny(photos, out), "--steps", "3", "--resume"])
    bar_lines = [line for line in (out / "log.txt").read_text().splitlines() if "shipped model (" in line]
    assert f"gain {scored:+.3f} dB" in bar_lines[-1] and "9.875" not in bar_lines[-1]
    assert json.loads(cache.read_text())["key"]["torch"] == torch.__version__


def test_resume_keeps_the_recipe_unless_overridden(photos, tmp_path):
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--precision", "bf16", "--still-share", "0.5", "--steps", "1",
                "--eval-every", "100"])
    train_main(["--out", str(out), "--photos", str(photos), "--resume", "--steps", "1", "--eval-every", "100"])
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["recipe"]["precision"] == "bf16" and checkpoint["recipe"]["patch"] == 16
    assert checkpoint["recipe"]["still_share"] == 0.5
    assert checkpoint["recipe"]["mild_share"] == data.TRAIN_SETTINGS.mild_share
    assert checkpoint["config"]["width"] == 8 and checkpoint["step"] == 2
    train_main(["--out", str(out), "--photos", str(photos), "--resume", "--steps", "1", "--eval-every", "100",
                "--precision", "fp32", "--lr", "1e-3"])
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["recipe"]["precision"] == "fp32" and checkpoint["recipe"]["lr"] == 1e-3


def test_gpu_leg_command_runs_on_cpu_without_pyav(photos, tmp_path):
    """The prepared CUDA command, tried for a few steps on the CPU with small clips, where `import av` fails (a
    GPU machine has no PyAV): it resumes a checkpoint and writes its own checkpoint and log into OUT."""
    start = tmp_path / "start"
    train_main([*tiny(photos, start), "--steps", "1", "--eval-every", "100"])
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "av.py").write_text("raise ImportError('PyAV is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]))
    out = tmp_path / "leg"
    result = subprocess.run(
        ["bash", str(ROOT / "export" / "gpu_leg.sh"), str(out), "5", "--resume-from", str(start / "last.pt"),
         "--device", "cpu", "--batch", "2", "--frames", "4", "--patch", "16", "--steps", "2", "--threads", "1",
         "--photos", str(photos)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    leg = torch.load(out / "last.pt", weights_only=True)
    assert leg["step"] == 3 and leg["recipe"]["synthesis"] == "torch" and leg["recipe"]["batch"] == 2
    log = (out / "log.txt").read_text()
    assert "start step 1" in log and '"device": "cpu"' in log and "validation gain" in log
    check = subprocess.run([sys.executable, "-c", "import av"], env=env, capture_output=True)
    assert check.returncode != 0  # PyAV really was unimportable in that process


def test_sigterm_saves_the_step_reached_and_stops(photos, tmp_path):
    """Stopping the background run (kill, Ctrl-C) keeps its progress: last.pt holds the last step taken."""
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "export.train", *tiny(photos, out), "--steps", "100000",
                                "--log-every", "1", "--eval-every", "100000"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while "step 3 loss" not in ((out / "log.txt").read_text() if (out / "log.txt").exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    log = (out / "log.txt").read_text()
    assert f"stop step {checkpoint['step']} (signal)" in log and checkpoint["step"] >= 3


def test_checkpoints_are_judged_under_the_shipped_models_guard(photos, tmp_path):
    """With a shipped model that carries a guard, each evaluation runs the checkpoint under that guard (the log
    says so), and the checkpoints the run writes stay the bare network, for a guard of their own."""
    shipped = tmp_path / "guarded.pt"
    torch.manual_seed(1)
    model = STRCNN("dtb", m=1, width=8, guard={"low": 0.05, "high": 0.5})
    save_torch(shipped, {"config": model.config(), "state_dict": model.state_dict()})
    out = tmp_path / "run"
    train_main([*tiny(photos, out), "--steps", "1", "--no-test", "--shipped", str(shipped)])
    lines = [line for line in (out / "log.txt").read_text().splitlines() if " h validation gain" in line]
    assert lines and all("under the shipped guard (low 0.05, high 0.5)" in line for line in lines)
    assert "guard" not in torch.load(out / "last.pt", weights_only=True)["config"]
