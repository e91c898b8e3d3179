"""``python -m export.train``: train STRCNN+DTB (or an ablation variant) on rendered or real blurry/sharp clips.

Presets: ``paper`` is Section 5.3 (lr 1e-4 decaying by 0.96 every 10k steps, batch 8, 13-frame clips of
128x128, MSE); ``cpu`` learns on two CPU cores (7-frame clips of 64x64 and a larger
learning rate after a 300-step warm-up); ``gpu`` fills a data-centre GPU (batch 48 of 13-frame 128x128 clips).
Any preset value can be overridden. Every preset optimises with AdamW (decoupled weight decay, see
`make_optimizer`): the paper's Adam with an L2 term kills this network's ReLU units (docs/TRAINING.md).
``--loss`` trains with MSE (the paper's), L1 or Charbonnier, and ``--harm W`` adds a charge on every pixel the
output moves further from the target than its input; ``--ema D`` keeps a moving average of the weights
(decay D), which is then what is evaluated, saved as the checkpoints' ``state_dict`` and exported, while the
trained weights travel beside it for resuming; these options can change on resume.

Training clips are rendered from the gathered photographs (``python -m export.photos data/photos``; its
validation split is never trained on) plus any ``--images DIR``. Batch k depends only on (seed, k), so a resumed
run sees exactly the data an uninterrupted one would. The run writes ``OUT/last.pt`` every few minutes (model,
optimizer, step, recipe), ``OUT/best.pt`` whenever the validation gain improves among the checkpoints that pass
the shipping rule against ``--shipped`` (`strcnn_sdk.metrics.ships`), and ``OUT/log.txt`` with the validation,
natural (`export.data.natural_clips`) and test figures (fp32), that rule's verdict, and with ``--gopro DIR`` the
gain on real pairs. ``--collection N`` trains on the gathered photographs' collections up to N (a new run: all of
them; a run keeps its collection on resume unless told). ``--anneal STEPS`` and ``--border B`` are arms of the recipe (docs/TRAINING.md):
the learning rate taken to zero over the next STEPS steps, and a loss that leaves out B pixels at each side of a
patch. ``--resume`` continues from ``OUT/last.pt`` with the
recipe stored in it (options given on the command line override it; a checkpoint of another optimiser is
refused); ``--resume-from FILE`` continues from
another checkpoint, writing into OUT (a GPU leg writes into the folder that comes back); ``--init FILE`` starts a
new run from a checkpoint's ``state_dict``. Checkpoints load with
``torch.load(..., weights_only=True)`` and export with ``python -m export --checkpoint OUT/best.pt``.

    python -m export.train --out runs/main --preset cpu --threads 1          # start
    python -m export.train --out runs/main --resume --threads 1              # continue
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from strcnn_sdk.metrics import clip_row, describe, ships, summarize
from strcnn_sdk.system import cpu_flags, write_atomic

from .data import (TRAIN_SETTINGS, Scene, Sources, clips_sha256, gopro_batches, natural_clips, plan_batch,
                   render_batch, rendering_mismatches, test_clips, validation_clips)
from .guard import Guard, GuardConfig
from .health import Firing, census
from .model import STRCNN, VARIANTS
from .onnx import load_checkpoint, save_torch
from .photos import LATEST

PRESETS = {
    "paper": dict(batch=8, frames=13, patch=128, lr=1e-4, decay_every=10_000, decay_rate=0.96, steps=300_000,
                  warmup=0),
    "cpu": dict(batch=8, frames=7, patch=64, lr=5e-4, decay_every=4_000, decay_rate=0.9, steps=1_000_000,
                warmup=300),
    "gpu": dict(batch=48, frames=13, patch=128, lr=5e-4, decay_every=4_000, decay_rate=0.9, steps=1_000_000,
                warmup=300),
}
# The share of training clips whose camera is still, whose blur is mild (under 3 px): the do-no-harm part; whose
# camera trembles, whose shutter is open under half the frame interval, and whose scene is soft.
SHARES = {k: getattr(TRAIN_SETTINGS, k)
          for k in ("still_share", "mild_share", "tremor_share", "short_shutter_share", "defocus_share")}
# Options every preset shares, and the value a checkpoint older than the option had: the training loss on the
# restored frames, the decay of the weights' exponential moving average (0: none; see `Averaged`), and the weight
# of the harm term (0: none; see `train_step`), the pixels at each side of a patch that the loss leaves out (0: none;
# see `train_step`), and the steps [start, stop] over which the learning rate anneals to zero ([]: none; see `lr_at`).
# The collections of gathered photographs a run trains on (`export.photos`): those up to this one (a new run: all).
OPTIONS = {"loss": "mse", "ema": 0.0, "harm": 0.0, "border": 0, "anneal": [], "collection": 1}
# What a run is, beside the model's constructor arguments: stored in every checkpoint and restored on resume.
RECIPE = (*PRESETS["paper"], *SHARES, *OPTIONS, "data", "synthesis", "precision", "seed", "device", "weight_decay")
PER_DEVICE = ("synthesis", "precision")  # chosen again when a run moves to another kind of device
OPTIMIZER = "adamw"  # stored in the recipe; a checkpoint of another optimiser does not resume
# Decoupled: a weight without a data gradient shrinks by lr * wd per step (5e-6 at lr 5e-4), so a unit silent for
# 10k steps keeps 95% of its weights; over the cpu preset's whole decaying schedule (sum of lr about 19) an
# unused weight keeps 83%. Data are endless here, so decay only keeps weights bounded (docs/TRAINING.md).
WEIGHT_DECAY = 1e-2
SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "strcnn_dtb.pt"  # the model a checkpoint must beat


class Batches(torch.utils.data.IterableDataset):
    """Training batches from step `start` on, in order: whole batches (NumPy synthesis), or only their scenes
    (`plans_only`, for torch synthesis, which renders them on the training device). With DataLoader workers,
    worker i makes every workers-th batch, so the stream is the same with any number of workers."""

    def __init__(self, sources: Sources, recipe: dict, start: int, plans_only: bool = False) -> None:
        self.sources, self.recipe, self.start, self.plans_only = sources, recipe, start, plans_only

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        step, stride = self.start + (info.id if info else 0), info.num_workers if info else 1
        while True:
            scenes, rng = recipe_plan(self.sources, self.recipe, step)
            yield (scenes, rng) if self.plans_only else render_batch(scenes, rng, self.sources)
            step += stride


def recipe_plan(sources: Sources, recipe: dict, step: int) -> tuple[list[Scene], np.random.Generator]:
    """The scenes of training batch `step` of a recipe (its seed, shape and shares of still and mild clips)."""
    settings = dataclasses.replace(TRAIN_SETTINGS, **{k: recipe[k] for k in SHARES})
    return plan_batch(sources, recipe["seed"], step, recipe["batch"], recipe["frames"],
                      (recipe["patch"], recipe["patch"]), settings)


def recipe_batch(sources: Sources, recipe: dict, step: int, renderer: str, device="cpu"):
    """Training batch `step` of a recipe, rendered by `renderer` on `device`."""
    return render_batch(*recipe_plan(sources, recipe, step), sources, renderer, device)


def _as_is(item):
    return item


def batches(recipe: dict, sources: Sources | None, start: int, device: torch.device, workers: int):
    """The endless training stream from step `start`, drawn in DataLoader workers (or in-process without
    them): whole batches with NumPy synthesis; scenes rendered here on `device` with torch synthesis, so
    that the GPU is fed by many CPU cores. Or crops of a real GoPro-layout dataset."""
    r = recipe
    if r["data"] != "synthetic":
        yield from gopro_batches(Path(r["data"]), r["seed"] * 100_003 + start, r["batch"], r["frames"],
                                 (r["patch"], r["patch"]))
        return
    on_device = r["synthesis"] == "torch"
    loader = torch.utils.data.DataLoader(Batches(sources, recipe, start, plans_only=on_device), batch_size=None,
                                         collate_fn=_as_is if on_device else None, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    for item in loader:
        yield render_batch(*item, sources, "torch", device) if on_device else item


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16")


def make_optimizer(model: STRCNN, recipe: dict) -> torch.optim.Optimizer:
    """AdamW over the model's parameters, weight decay on the convolution weights only (not on biases and DTB's
    beta): the optimiser of every run, its decay `recipe["weight_decay"]`."""
    params = list(model.parameters())
    decay = [p for p in params if p.ndim > 1]
    rest = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                              {"params": rest, "weight_decay": 0.0}], lr=recipe["lr"])


def check_optimizer(recipe: dict, source: Path) -> None:
    """Refuse to resume a checkpoint trained with another optimiser: its state means something else."""
    used = recipe.get("optimizer", "adam with coupled L2 weight decay")
    if used != OPTIMIZER:
        raise SystemExit(f"{source} was trained with {used}; this trainer uses {OPTIMIZER} (decoupled weight decay) "
                         f"and cannot resume it. Start a new run, or pass --init {source} to start one from its "
                         "weights.")


def widen_frames(weight: torch.Tensor, m: int, wider: int) -> torch.Tensor:
    """A first convolution's weight [out, 3(2m+1), k, k] (or a tensor of its shape) for `wider` frames each side:
    the frames added at both ends get zeros, so the network computes what it did."""
    pad = 3 * (wider - m)
    return F.pad(weight, (0, 0, 0, 0, pad, pad)) if pad else weight


def widen(state: dict, m: int, wider: int) -> dict:
    """A state dict of temporal radius `m` as one of radius `wider` >= m that computes the same (`widen_frames`):
    how a run goes on with more input frames (the paper's m=2) from a checkpoint of fewer."""
    return {k: widen_frames(v, m, wider) if k == "in_conv.weight" else v for k, v in state.items()}


def charbonnier(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of sqrt(d^2 + eps^2): L1 with a rounded minimum (Lai et al., "Deep Laplacian Pyramid Networks", 2017)."""
    return torch.sqrt((output - target) ** 2 + eps ** 2).mean()


LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "charbonnier": charbonnier}  # the paper trains with MSE


def train_step(model: STRCNN, optimizer: torch.optim.Optimizer, blurry: torch.Tensor, sharp: torch.Tensor,
               precision: str, loss: str = "mse", harm: float = 0.0, border: int = 0) -> tuple[float, float]:
    """One optimizer step on a batch [N, T, 3, H, W] with loss `loss` (a key of LOSSES) on the T-2m restored
    frames, plus `harm` times the mean of max(0, (output - target)^2 - (input - target)^2): a charge on every
    pixel the output moves further from the target than the blurry input was. With `border` B, both leave out the
    B pixels at each side of the patch, which the network restores without the picture beyond the patch that
    their blur came from. Returns that loss and the frames' MSE (what the log's PSNR is of, whatever the loss)."""
    if precision == "bf16":
        blurry = blurry.contiguous(memory_format=torch.contiguous_format)
    with autocast(blurry.device, precision):
        out, _ = model.run(blurry)
    frames = slice(model.m, sharp.shape[1] - model.m)
    rows, cols = slice(border, sharp.shape[-2] - border), slice(border, sharp.shape[-1] - border)
    out, target = out.float()[..., rows, cols], sharp[:, frames, :, rows, cols]
    value = LOSSES[loss](out, target)
    if harm:
        value = value + harm * F.relu((out - target) ** 2 - (blurry[:, frames, :, rows, cols] - target) ** 2).mean()
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value.item(), F.mse_loss(out.detach(), target).item()


class Averaged:
    """An exponential moving average of a model's weights, the copy that is evaluated, kept as best.pt and
    exported (the usual practice in restoration training). Its decay ramps up as (1 + n) / (10 + n) over its
    first updates, so that the average of a run started from other weights leaves them quickly."""

    def __init__(self, model: STRCNN, decay: float, weights: dict | None = None, updates: int = 0) -> None:
        self.model = copy.deepcopy(model).eval()
        if weights is not None:
            self.model.load_state_dict(weights)
        self.decay, self.updates = decay, updates

    @torch.no_grad()
    def update(self, model: STRCNN) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
            mine.lerp_(theirs, 1 - decay)


def shipped_bar(shipped: Path, clips, device: torch.device, cache: Path) -> dict:
    """The shipped model's validation figures in fp32, the shipping rule's bar. Scoring it costs minutes on a CPU
    core, so the figures are kept in `cache`, keyed by what they depend on: the checkpoint's and the clips' bytes,
    the device type and torch's release; a cache of another key is scored again and replaced."""
    key = {"checkpoint_sha256": hashlib.sha256(Path(shipped).read_bytes()).hexdigest(),
           "clips_sha256": clips_sha256(clips), "device": device.type, "torch": torch.__version__}
    try:
        cached = json.loads(Path(cache).read_text())
        if cached["key"] == key:
            return cached["figures"]
    except (OSError, ValueError, KeyError):
        pass
    figures = evaluate(load_checkpoint(shipped).to(device), clips, device, "fp32")
    write_atomic(Path(cache), json.dumps({"key": key, "figures": figures}, indent=1).encode())
    return figures


def run_clip(model: STRCNN, blurry: np.ndarray, device: torch.device, precision: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip's uint8 frames [T, H, W, 3] through `model` as the runtime streams them, each end repeated m times,
    in `precision`: the padded input [T + 2m, 3, H, W] in [0, 1] and the unclipped output [T, 3, H, W] in float32.
    The caller sets no_grad and eval."""
    x = torch.from_numpy(blurry).permute(0, 3, 1, 2).float().div(255).to(device)
    padded = torch.cat([x[:1]] * model.m + [x] + [x[-1:]] * model.m)
    with autocast(device, precision):
        out, _ = model.run(padded[None])
    return padded, out[0].float()


def evaluate(model: STRCNN, clips, device: torch.device, precision: str) -> dict:
    """`strcnn_sdk.metrics.summarize` of the model's 8-bit output on clips (name, blurry, sharp), each clip's
    ends repeated as the runtime does, in the training precision."""
    model.eval()
    rows = []
    with torch.no_grad():
        for name, blurry, sharp in clips:
            out = run_clip(model, blurry, device, precision)[1]
            out = (out.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            rows.append(clip_row(name, blurry, out, sharp))
    model.train()
    return summarize(rows)


def choose(options: tuple[str, ...], timed) -> str:
    """The option whose `timed(option)` (seconds) is smallest; prints the timings."""
    timings = {option: timed(option) for option in options}
    print(f"timings, s: {json.dumps({k: round(v, 3) for k, v in timings.items()})}")
    return min(timings, key=timings.get)


def choose_precision(model: STRCNN, device: torch.device, shape: tuple) -> str:
    """On CUDA bf16; on a CPU the faster of fp32 and bf16 + channels_last, timed on two steps each."""
    if device.type == "cuda":
        return "bf16"

    def timed(precision: str) -> float:
        probe = STRCNN(**model.config()).to(memory_format=torch.channels_last if precision == "bf16" else
                                            torch.contiguous_format)
        clip = torch.rand(*shape)
        for i in range(3):
            if i == 1:
                start = time.perf_counter()
            with autocast(device, precision):
                out, _ = probe.run(clip)
            out.float().mean().backward()
        return (time.perf_counter() - start) / 2

    return choose(("fp32", "bf16"), timed)


def choose_synthesis(sources: Sources, recipe: dict, device: torch.device) -> str:
    """torch on CUDA; on a CPU the faster of the NumPy and torch renderers, timed on two batches each."""
    if device.type == "cuda":
        return "torch"
    sources.atlas(device)  # load every photograph first: the timings are of rendering alone

    def timed(renderer: str) -> float:
        start = time.perf_counter()
        for step in range(2):
            recipe_batch(sources, recipe, step, renderer)
        return (time.perf_counter() - start) / 2

    return choose(("numpy", "torch"), timed)


def lr_at(recipe: dict, step: int) -> float:
    """Learning rate of step `step`: linear warm-up, then exponential decay; within the recipe's `anneal` steps
    [start, stop], the rate of `start` taken to zero along half a cosine (zero from `stop` on)."""
    if recipe.get("anneal") and step >= recipe["anneal"][0]:
        start, stop = recipe["anneal"]
        done = min(1.0, (step - start) / (stop - start))
        return lr_at(dict(recipe, anneal=[]), start) * 0.5 * (1 + math.cos(math.pi * done))
    warm = min(1.0, (step + 1) / (recipe["warmup"] + 1))
    return recipe["lr"] * warm * recipe["decay_rate"] ** (step / recipe["decay_every"])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/dtb"), help="folder for checkpoints and log")
    parser.add_argument("--preset", choices=PRESETS, help="recipe to start from (default: paper, or the "
                                                         "checkpoint's recipe on resume)")
    parser.add_argument("--variant", choices=VARIANTS, default="dtb")
    parser.add_argument("--m", type=int, help="temporal radius: 2m+1 frames a step (default 1; on resume, a larger "
                        "one widens the checkpoint's first convolution, see `widen`)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--no-residual", action="store_true", help="do not add the centre blurry frame")
    for key in ("batch", "frames", "patch", "decay_every", "warmup", "seed", "border", "collection"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, help="override the recipe")
    parser.add_argument("--steps", type=int, help="steps to train in this run (default: the preset's total)")
    for key in ("lr", "decay_rate", "weight_decay", *SHARES):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, help="override the recipe")
    parser.add_argument("--loss", choices=LOSSES, help="training loss (default: mse, as in the paper)")
    parser.add_argument("--ema", type=float, help="decay of the weights' moving average that is evaluated, saved "
                        "and exported, e.g. 0.999 (default: 0, none)")
    parser.add_argument("--harm", type=float, help="weight of a term that charges each pixel the output moves "
                        "further from the target than the input (default: 0, none)")
    parser.add_argument("--anneal", type=int, metavar="STEPS", help="take the learning rate to zero along half a "
                        "cosine over the next STEPS steps (an arm's schedule; default: none)")
    parser.add_argument("--shipped", type=Path, default=SHIPPED,
                        help="checkpoint of the shipped model, the bar a checkpoint must pass to be saved as best.pt")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this run")
    parser.add_argument("--data", help="'synthetic' (default), or the root of a GoPro-layout dataset")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"),
                        help="gathered photographs (train split trains, validation split selects checkpoints)")
    parser.add_argument("--images", type=Path, action="append", default=[],
                        help="a folder of further sharp training images (repeatable)")
    parser.add_argument("--synthesis", choices=("auto", "numpy", "torch"),
                        help="clip renderer (auto: torch on CUDA, the faster one on a CPU)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes drawing the batches "
                        "(with torch synthesis, their scenes)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="(default: auto, or the "
                                                                             "checkpoint's on resume)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--eval-every", type=int, default=4000, help="steps between validation and test figures "
                        "(each evaluation costs about 90 clips of 8 frames of 320x240 in fp32)")
    parser.add_argument("--gopro", type=Path, help="real blurry/sharp pairs (a GoPro-layout folder or NAME_blur1.png"
                        " / NAME_sharp1.png pairs) scored at every evaluation beside the synthetic sets; never used "
                        "to choose")
    parser.add_argument("--no-test", action="store_true", help="evaluate on validation alone, a quarter faster "
                        "(arms are judged on validation; the test figures are only reported)")
    parser.add_argument("--log-every", type=int, default=50, help="steps between loss lines")
    parser.add_argument("--save-minutes", type=float, default=5.0, help="minutes between checkpoints")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    resume.add_argument("--resume-from", type=Path, help="continue from this checkpoint, writing into OUT")
    resume.add_argument("--init", type=Path, help="start from the weights of this checkpoint (a new run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.resume_from or (args.out / "last.pt" if args.resume else None)
    if source is not None and not source.is_file():
        raise SystemExit(f"{source}: no checkpoint to resume")
    resume = torch.load(source, map_location="cpu", weights_only=True) if source else None
    given = {k: getattr(args, k) for k in RECIPE if k not in ("steps", "anneal") and getattr(args, k) is not None}
    given["device"] = device.type
    if resume is not None:
        check_optimizer(resume["recipe"], source)
        recipe = {**SHARES, **OPTIONS, **resume["recipe"], **(PRESETS[args.preset] if args.preset else {}), **given}
        if resume["recipe"]["device"] != device.type:
            recipe.update({k: given.get(k, "auto") for k in PER_DEVICE})
        radius = resume["config"]["m"]
        if args.m is not None and args.m < radius:
            raise SystemExit(f"{source}: a run of m={radius} cannot go on with fewer frames (--m {args.m})")
        model = STRCNN(**{**resume["config"], "m": args.m or radius})
        model.load_state_dict(widen(resume.get("training_state_dict", resume["state_dict"]), radius, model.m))
        step, elapsed, best = resume["step"], resume["elapsed_s"], resume["best_gain"]
        torch.set_rng_state(resume["torch_rng"])
    else:
        recipe = {**PRESETS[args.preset or "paper"], **SHARES, **OPTIONS, "data": "synthetic", "synthesis": "auto",
                  "precision": "auto", "seed": 0, "optimizer": OPTIMIZER, "weight_decay": WEIGHT_DECAY,
                  "collection": LATEST, **given}
        torch.manual_seed(recipe["seed"])
        model = STRCNN(args.variant, m=1 if args.m is None else args.m, width=args.width,
                       residual=not args.no_residual)
        step, elapsed, best = 0, 0.0, -math.inf
        if args.init is not None:
            init = torch.load(args.init, map_location="cpu", weights_only=True)
            model = STRCNN(**init["config"])
            model.load_state_dict(init["state_dict"])
        elif model.residual:  # start as the identity (output = centre frame): learning starts at the input's PSNR
            torch.nn.init.zeros_(model.out_conv.weight)
            torch.nn.init.zeros_(model.out_conv.bias)
    if args.anneal is not None:
        recipe["anneal"] = [step, step + args.anneal]
    model.to(device)
    optimizer = make_optimizer(model, recipe)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        for name, value in optimizer.state[model.in_conv.weight].items():  # Adam's moments, as the weights
            if name != "step":
                optimizer.state[model.in_conv.weight][name] = widen_frames(value, radius, model.m)
        for group in optimizer.param_groups[:1]:  # the decay may change on resume; the state does not depend on it
            group["weight_decay"] = recipe["weight_decay"]

    sources = None
    if recipe["data"] == "synthetic":
        folders = [Sources.folder(args.photos, "train", recipe["collection"])] \
            if (args.photos / "manifest.json").is_file() else []
        folders += [Sources.folder(folder) for folder in args.images]
        if not folders:
            raise SystemExit(f"{args.photos}: no gathered photographs; run `python -m export.photos {args.photos}` "
                             "or pass --images DIR")
        sources = sum(folders[1:], folders[0])
    try:
        validation = validation_clips(args.photos)
    except (OSError, ValueError) as e:
        raise SystemExit(f"the validation set needs the gathered photographs: {e}") from None
    try:  # photographs gathered before the natural split had none
        natural = natural_clips(args.photos)
    except ValueError:
        natural = []
    gopro = []
    if args.gopro is not None:
        from strcnn_sdk.evaluation import read_clips  # reads with the video module: not on a machine without PyAV

        gopro = list(read_clips(args.gopro))
    try:
        test = [] if args.no_test else test_clips()
    except ImportError as e:  # a machine without matplotlib (grace_hopper) reports validation figures only
        test, missing = [], e
    shape = (recipe["batch"], recipe["frames"], 3, recipe["patch"], recipe["patch"])
    if recipe["precision"] == "auto":
        recipe["precision"] = choose_precision(model, device, shape)
    if recipe["synthesis"] == "auto":
        recipe["synthesis"] = choose_synthesis(sources, recipe, device) if sources else "numpy"
    precision = recipe["precision"]
    if precision == "bf16":
        model.to(memory_format=torch.channels_last)
    averaged = None
    if recipe["ema"] > 0:  # a checkpoint with a moving average keeps it as its state_dict
        kept = resume is not None and "training_state_dict" in resume
        averaged = Averaged(model, recipe["ema"], widen(resume["state_dict"], radius, model.m) if kept else None,
                            resume.get("ema_updates", 0) if kept else 0)
    evaluated = averaged.model if averaged else model

    log_file = (args.out / "log.txt").open("a")

    def log(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    hardware = f"{cpu_flags()}{' / ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}"
    log(f"start step {step}: {json.dumps(dict(recipe, **model.config(), device=str(device), threads=torch.get_num_threads(), sources=len(sources) if sources else 0, hours=round(elapsed / 3600, 3)))}"
        f" on {hardware}")
    if unpinned := rendering_mismatches():
        log(f"rendering with {', '.join(unpinned)}: the batches and evaluation figures differ from the pinned ones")

    def weights(m: STRCNN) -> dict:
        return {k: v.cpu() for k, v in m.state_dict().items()}

    def checkpoint() -> dict:
        """The evaluated weights as state_dict (what export and --init read), the optimiser's own beside them
        when they differ."""
        data = {"config": model.config(), "state_dict": weights(evaluated), "optimizer": optimizer.state_dict(),
                "step": step, "elapsed_s": elapsed, "best_gain": best, "torch_rng": torch.get_rng_state(),
                "recipe": recipe}
        if averaged:
            data.update(training_state_dict=weights(model), ema_updates=averaged.updates)
        return data

    # the bar of the shipping rule: the shipped model on the same validation clips, in fp32 as every evaluation
    bar = shipped_bar(args.shipped, validation, device, args.out / "shipped-bar.json")
    log(f"shipped model ({os.path.relpath(args.shipped)}) validation {describe(bar)}")
    # a shipped model with a guard is judged with it: checkpoints are evaluated under the same guard, so that the
    # rule compares networks as they would ship (each shipped model's own ramp is fitted by export.fit_guard)
    shipped_guard = load_checkpoint(args.shipped).config().get("guard")
    guard = Guard(GuardConfig(**shipped_guard), evaluated.m).to(device) if shipped_guard else None
    under = f" under the shipped guard (low {shipped_guard['low']}, high {shipped_guard['high']})" if guard else ""

    def report() -> None:
        """Evaluate and log; its time is left out of the run's hours, which count training alone, so that runs
        whose evaluations cost differently (another width, another device) compare at equal training time."""
        nonlocal best, started
        hours = f"{elapsed / 3600:.3f} h"
        began = time.perf_counter()
        evaluated.guard = guard
        try:
            with Firing(evaluated) as firing:  # silent channels: those that never fire on the validation clips
                figures = {"validation": evaluate(evaluated, validation, device, "fp32")}
            for name, clips in (("natural", natural), ("test", test)):
                if clips:
                    figures[name] = evaluate(evaluated, clips, device, "fp32")
        finally:
            evaluated.guard = None
        health = census(evaluated, firing).describe()
        for name, summary in figures.items():
            log(f"step {step} {hours} {name} {describe(summary)}{under}; {health}")
        if gopro:  # single frames show a guard no motion, so real pairs are scored on the network alone
            log(f"step {step} {hours} gopro {describe(evaluate(evaluated, gopro, device, 'fp32'))} (the network "
                "alone)")
        shipping, why = ships(figures["validation"], bar)
        log(f"step {step} {hours} shipping rule: {why} (evaluation {time.perf_counter() - began:.0f} s)")
        if shipping and figures["validation"]["gain"] > best:
            best = figures["validation"]["gain"]
            save_torch(args.out / "best.pt", checkpoint())
            log(f"step {step} best shipping validation gain so far: saved best.pt")
        started += time.perf_counter() - began

    if not test and not args.no_test:
        log(f"the test set cannot be rendered here ({missing}); it is reported when the run moves on")
    stream = batches(recipe, sources, step, device, args.workers)
    started = time.perf_counter() - elapsed
    run_start = last_save = time.perf_counter()
    window = {"data": 0.0, "total": 0.0, "loss": 0.0, "mse": 0.0, "n": 0}
    loss_name = "loss" if recipe["loss"] == "mse" else f"{recipe['loss']} loss"
    stop = min(recipe["steps"], step + args.steps) if args.steps is not None else recipe["steps"]
    # on a GPU the fetch is timed between synchronisations: without them it would wait for the last step's kernels
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    signals: list[int] = []  # SIGTERM or Ctrl-C: finish the step, save last.pt, stop
    previous = {s: signal.signal(s, lambda signum, frame: signals.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    while step < stop and not signals:
        if args.minutes is not None and time.perf_counter() - run_start > args.minutes * 60:
            break
        sync()
        t0 = time.perf_counter()
        blurry, sharp = (x.to(device, non_blocking=True) for x in next(stream))
        sync()
        t1 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe, step)
        loss, mse = train_step(model, optimizer, blurry, sharp, precision, recipe["loss"], recipe["harm"],
                               recipe["border"])
        if averaged:
            averaged.update(model)
        step += 1
        elapsed = time.perf_counter() - started
        window["data"] += t1 - t0
        window["total"] += time.perf_counter() - t0
        window["loss"] += loss
        window["mse"] += mse
        window["n"] += 1
        if step % args.log_every == 0:
            log(f"step {step} {loss_name} {window['loss'] / window['n']:.5f} "
                f"(PSNR {-10 * math.log10(window['mse'] / window['n'] + 1e-12):.2f} dB) lr {lr_at(recipe, step):.2e} "
                f"{window['total'] / window['n']:.3f} s/step, data {100 * window['data'] / window['total']:.1f}% "
                f"of the time, {elapsed / 3600:.3f} h")
            window = dict.fromkeys(window, 0.0)
        if step % args.eval_every == 0:
            report()
        if time.perf_counter() - last_save > args.save_minutes * 60:
            save_torch(args.out / "last.pt", checkpoint())
            last_save = time.perf_counter()
    if step % args.eval_every and not signals:
        report()
    save_torch(args.out / "last.pt", checkpoint())
    for s, handler in previous.items():
        signal.signal(s, handler)
    log(f"stop step {step}{' (signal)' if signals else ''}: {elapsed / 3600:.3f} h in all, best validation gain "
        f"{best:+.3f} dB")
    log_file.close()


if __name__ == "__main__":
    main()
