"""``python -m export.train``: train STRCNN+DTB (or an ablation variant) on rendered or real blurry/sharp clips.

Presets: ``paper`` is Section 5.3 (Adam, lr 1e-4 decaying by 0.96 every 10k steps, batch 8, 13-frame clips of
128x128, MSE plus 1e-5 weight decay); ``cpu`` learns within hours on two CPU cores (7-frame clips of 64x64 and a
larger learning rate after a 300-step warm-up). Any preset value can be overridden. The run writes ``OUT/last.pt`` every few minutes
(model, optimizer, step, RNG: ``--resume`` continues from it), ``OUT/best.pt`` whenever the held-out PSNR
improves, and ``OUT/log.txt``. Checkpoints load with ``torch.load(..., weights_only=True)`` and export with
``python -m export --checkpoint OUT/best.pt``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from strcnn_sdk.metrics import clip_psnr
from strcnn_sdk.system import cpu_flags

from .data import gopro_batches, heldout_clips, synthetic_batches
from .model import STRCNN, VARIANTS
from .onnx import save_torch

PRESETS = {
    "paper": dict(batch=8, frames=13, patch=128, lr=1e-4, decay_every=10_000, decay_rate=0.96, steps=300_000,
                  warmup=0),
    "cpu": dict(batch=8, frames=7, patch=64, lr=5e-4, decay_every=4_000, decay_rate=0.9, steps=1_000_000,
                warmup=300),
}
WEIGHT_DECAY = 1e-5  # the paper's lambda


class Batches(torch.utils.data.IterableDataset):
    """Endless training batches, made in DataLoader worker processes when asked for (each its own seed)."""

    def __init__(self, data: str, seed: int, batch: int, frames: int, patch: int) -> None:
        self.data, self.seed, self.shape = data, seed, (batch, frames, (patch, patch))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        seed = self.seed * 1009 + (info.id if info else 0)
        if self.data == "synthetic":
            return synthetic_batches(seed, *self.shape)
        return gopro_batches(Path(self.data), seed, *self.shape)


def evaluate(model: STRCNN, clips, device: torch.device) -> tuple[float, float]:
    """Mean PSNR (per frame, then over clips, as `strcnn eval` reports it) of the model's 8-bit output and of
    the blurry input against the sharp frames, with each clip's ends repeated as the runtime does."""
    model.eval()
    ours, blurs = [], []
    with torch.no_grad():
        for _, blurry, sharp in clips:
            x = torch.from_numpy(blurry).permute(0, 3, 1, 2).float().div(255).to(device)
            x = torch.cat([x[:1]] * model.m + [x] + [x[-1:]] * model.m)
            out, _ = model.run(x[None])
            out = (out[0].clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            ours.append(clip_psnr(out, sharp))
            blurs.append(clip_psnr(blurry, sharp))
    model.train()
    return float(np.mean(ours)), float(np.mean(blurs))


def choose_precision(model: STRCNN, device: torch.device, shape: tuple) -> str:
    """On CUDA bf16; on a CPU the faster of fp32 and bf16 + channels_last, timed on two steps each."""
    if device.type == "cuda":
        return "bf16"
    timings = {}
    for precision in ("fp32", "bf16"):
        probe = STRCNN(**model.config()).to(memory_format=torch.channels_last if precision == "bf16" else
                                            torch.contiguous_format)
        clip = torch.rand(*shape)
        for i in range(3):
            if i == 1:
                start = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                out, _ = probe.run(clip)
            out.float().mean().backward()
        timings[precision] = (time.perf_counter() - start) / 2
    print(f"precision probe, s/step: {json.dumps({k: round(v, 3) for k, v in timings.items()})}")
    return min(timings, key=timings.get)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/dtb"), help="folder for checkpoints and log")
    parser.add_argument("--preset", choices=PRESETS, default="paper")
    parser.add_argument("--variant", choices=VARIANTS, default="dtb")
    parser.add_argument("--m", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--no-residual", action="store_true", help="do not add the centre blurry frame")
    for key in ("batch", "frames", "patch", "steps", "decay_every", "warmup"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, help="override the preset")
    for key in ("lr", "decay_rate"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=float, help="override the preset")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this run")
    parser.add_argument("--data", default="synthetic", help="'synthetic', or the root of a GoPro-layout dataset")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes making data (0: in-process)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations")
    parser.add_argument("--save-minutes", type=float, default=2.0, help="minutes between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--init", type=Path, help="start from the weights of this checkpoint (e.g. the shipped .pt)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    hp = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in PRESETS[args.preset].items()}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "log.txt").open("a")

    def log(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    torch.manual_seed(args.seed)
    model = STRCNN(args.variant, m=args.m, width=args.width, residual=not args.no_residual)
    last = args.out / "last.pt"
    step, elapsed, best = 0, 0.0, -math.inf
    resume = torch.load(last, map_location="cpu", weights_only=True) if args.resume and last.exists() else None
    if resume is not None:
        model = STRCNN(**resume["config"])
        model.load_state_dict(resume["state_dict"])
        step, elapsed, best = resume["step"], resume["elapsed_s"], resume["best_psnr"]
        torch.set_rng_state(resume["torch_rng"])
    elif args.init is not None:
        init = torch.load(args.init, map_location="cpu", weights_only=True)
        model = STRCNN(**init["config"])
        model.load_state_dict(init["state_dict"])
    elif model.residual:  # start as the identity (output = centre frame), so learning starts at the input's PSNR
        torch.nn.init.zeros_(model.out_conv.weight)
        torch.nn.init.zeros_(model.out_conv.bias)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=WEIGHT_DECAY)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / (hp["warmup"] + 1)) * hp["decay_rate"] ** (s / hp["decay_every"]),
        last_epoch=step - 1)  # on resume the optimizer's param groups already carry 'initial_lr'


    shape = (hp["batch"], hp["frames"], 3, hp["patch"], hp["patch"])
    precision = args.precision if args.precision != "auto" else choose_precision(model, device, shape)
    if precision == "bf16":
        model.to(memory_format=torch.channels_last)
    log(f"start step {step}: {json.dumps(dict(hp, precision=precision, variant=model.variant, m=model.m, width=model.width, residual=model.residual, data=args.data, device=str(device), threads=torch.get_num_threads()))}"
        f" on {cpu_flags()}{' / ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}")
    clips = heldout_clips()
    loader = torch.utils.data.DataLoader(
        Batches(args.data, args.seed * 100_003 + step, hp["batch"], hp["frames"], hp["patch"]),
        batch_size=None, num_workers=args.workers, prefetch_factor=4 if args.workers else None)
    batches = iter(loader)

    def checkpoint() -> dict:
        return {"config": model.config(), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed, "best_psnr": best,
                "torch_rng": torch.get_rng_state(), "hyperparameters": hp, "precision": precision}

    started = time.perf_counter() - elapsed
    run_start, last_save = time.perf_counter(), time.perf_counter()
    window = {"data": 0.0, "total": 0.0, "loss": 0.0, "n": 0}
    while step < hp["steps"]:
        if args.minutes is not None and time.perf_counter() - run_start > args.minutes * 60:
            break
        t0 = time.perf_counter()
        blurry, sharp = (x.to(device, non_blocking=True) for x in next(batches))
        t1 = time.perf_counter()
        if precision == "bf16":
            blurry = blurry.contiguous(memory_format=torch.contiguous_format)
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            out, _ = model.run(blurry)
        loss = F.mse_loss(out.float(), sharp[:, model.m:sharp.shape[1] - model.m])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        elapsed = time.perf_counter() - started
        window["data"] += t1 - t0
        window["total"] += time.perf_counter() - t0
        window["loss"] += loss.item()
        window["n"] += 1
        if step % 50 == 0:
            log(f"step {step} loss {window['loss'] / window['n']:.5f} lr {scheduler.get_last_lr()[0]:.2e} "
                f"{window['total'] / window['n']:.3f} s/step, data {100 * window['data'] / window['total']:.1f}% "
                f"of the time, {elapsed / 3600:.2f} h")
            window = dict.fromkeys(window, 0.0)
        if step % args.eval_every == 0:
            ours, blur = evaluate(model, clips, device)
            log(f"step {step} heldout psnr {ours:.3f} dB (blurry {blur:.3f} dB, gain {ours - blur:+.3f} dB)")
            if ours > best:
                best = ours
                save_torch(args.out / "best.pt", checkpoint())
        if time.perf_counter() - last_save > args.save_minutes * 60:
            save_torch(last, checkpoint())
            last_save = time.perf_counter()
    save_torch(last, checkpoint())
    ours, blur = evaluate(model, clips, device)
    log(f"stop step {step}: heldout psnr {ours:.3f} dB (blurry {blur:.3f} dB, gain {ours - blur:+.3f} dB), "
        f"{elapsed / 3600:.2f} h in all, best {best:.3f} dB")
    if ours > best:
        best = ours
        save_torch(args.out / "best.pt", checkpoint())
        save_torch(last, checkpoint())
    log_file.close()


if __name__ == "__main__":
    main()
