"""``python -m export.bench``: seconds per frame of the SDK's CPU paths beside PyTorch (and OpenVINO where
installed), on the same weights, in one run, with the CPU's flags printed.

Rows: PyTorch eager fp32; PyTorch bf16 autocast + channels_last; OpenVINO fp32 and bf16 (when ``openvino`` is
importable); the SDK's Model.run with each shipped precision and with the one ``precision="auto"`` picks here.
Each figure is the median of several runs after a warm-up, one step of the recurrent model at each size.

``--device cuda`` measures the PyTorch model on the GPU instead (fp32, bf16 autocast + channels_last, and that
step replayed as a CUDA graph): the baseline that an ONNX Runtime CUDA path has to beat.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from strcnn_sdk import Model, UntrainedModelWarning
from strcnn_sdk.model import shipped_model_path
from strcnn_sdk.system import cpu_flags, median_seconds

from .onnx import load_checkpoint


def torch_rows(checkpoint: Path, frames: np.ndarray, state: list[np.ndarray], runs: int) -> dict[str, float]:
    model = load_checkpoint(checkpoint)
    x, f, h = (torch.from_numpy(a) for a in (frames, *state))
    rows = {}
    with torch.no_grad():
        rows["PyTorch eager fp32"] = median_seconds(lambda: model(x, f, h), runs)
        model_cl = load_checkpoint(checkpoint).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)

        def bf16():
            with torch.autocast("cpu", torch.bfloat16):
                return model_cl(x_cl, f, h)

        rows["PyTorch bf16 autocast + channels_last"] = median_seconds(bf16, runs)
    return rows


def cuda_rows(checkpoint: Path, frames: np.ndarray, state: list[np.ndarray], runs: int) -> dict[str, float]:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    model = load_checkpoint(checkpoint).to(device)
    x, f, h = (torch.from_numpy(a).to(device) for a in (frames, *state))

    def timed(fn) -> float:
        def synced():
            fn()
            torch.cuda.synchronize()
        return median_seconds(synced, runs)

    rows = {}
    with torch.no_grad():
        rows["PyTorch CUDA fp32 (TF32 convolutions)"] = timed(lambda: model(x, f, h))
        model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)

        def bf16():
            with torch.autocast("cuda", torch.bfloat16, cache_enabled=False):
                return model(x_cl, f, h)

        rows["PyTorch CUDA bf16 autocast + channels_last"] = timed(bf16)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up outside the capture, as CUDA graphs require
            for _ in range(3):
                bf16()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            bf16()
        rows["PyTorch CUDA bf16 + channels_last, CUDA graph"] = timed(graph.replay)
    return rows


def openvino_rows(onnx_path: Path, frames: np.ndarray, state: list[np.ndarray], runs: int) -> dict[str, float]:
    try:
        import openvino as ov
    except ImportError:
        return {}
    core, rows = ov.Core(), {}
    for hint in ("f32", "bf16"):
        compiled = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        request = compiled.create_infer_request()
        feed = {"frames": frames, "F_in": state[0], "h_in": state[1]}
        rows[f"OpenVINO {ov.__version__.split('-')[0]} {hint}"] = median_seconds(lambda: request.infer(feed), runs)
    return rows


def sdk_rows(frames: np.ndarray, threads: int | None, runs: int) -> dict[str, float]:
    rows = {}
    for precision in ("fp32", "int8", "auto"):
        if precision != "auto" and not shipped_model_path(precision).is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedModelWarning)
            model = Model(providers="cpu", threads=threads, precision=precision)
        state = model.zero_state(1, *frames.shape[2:])
        label = f"strcnn-sdk ONNX Runtime {model.meta['precision']}" + (" (the default here)" if precision == "auto"
                                                                          else "")
        rows[label] = median_seconds(lambda: model.run(frames, state), runs)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x480,1280x720", help="comma-separated WxH (even)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, help="threads for every engine (default: all cores)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the PyTorch model on the GPU")
    parser.add_argument("--checkpoint", type=Path, help="PyTorch weights (default: the shipped model's .pt)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or shipped_model_path("fp32").with_suffix(".pt")
    width = load_checkpoint(checkpoint).width  # the state's channels; the SDK's rows run the default shipped model
    gpu = f"; gpu: {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"cpu: {cpu_flags()}{gpu}; torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"weights {checkpoint.name}")
    rng = np.random.default_rng(0)
    for size in args.sizes.split(","):
        size_w, height = (int(v) for v in size.split("x"))
        frames = rng.random((1, 9, height, size_w), dtype=np.float32)
        state = [np.zeros((1, c, height // 2, size_w // 2), np.float32) for c in (width // 2, width)]
        if args.device == "cuda":
            rows = cuda_rows(checkpoint, frames, state, args.runs)
        else:
            rows = {**torch_rows(checkpoint, frames, state, args.runs),
                    **openvino_rows(shipped_model_path("fp32"), frames, state, args.runs),
                    **sdk_rows(frames, args.threads, args.runs)}
        fastest_peer = min(v for k, v in rows.items() if not k.startswith("strcnn-sdk"))
        print(f"\n{size_w}x{height}, seconds per frame (median of {args.runs}):")
        for label, seconds in rows.items():
            print(f"  {label:<48} {seconds:7.3f} s  {1 / seconds:6.2f} fps  "
                  f"{fastest_peer / seconds:5.2f}x the fastest peer")


if __name__ == "__main__":
    main()
