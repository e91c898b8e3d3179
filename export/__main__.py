"""``python -m export``: write a checkpoint (or random weights) as the contract's .onnx, .json and .pt."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .model import STRCNN, VARIANTS
from .onnx import export, load_checkpoint, write_identity


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a .pt holding 'config' and 'state_dict'")
    source.add_argument("--random", action="store_true", help="random weights (untrained), for tests")
    source.add_argument("--identity", action="store_true",
                        help="a model that returns the centre frame, to measure the video pipeline alone")
    parser.add_argument("--out", type=Path, default=Path("weights/strcnn_dtb.onnx"),
                        help="the .onnx to write; the .json sidecar and .pt go beside it")
    parser.add_argument("--variant", choices=VARIANTS, default="dtb", help="with --random")
    parser.add_argument("--m", type=int, default=1, help="temporal radius, with --random")
    parser.add_argument("--width", type=int, default=64, help="trunk width, with --random")
    parser.add_argument("--no-residual", action="store_true", help="with --random: no centre-frame skip")
    parser.add_argument("--seed", type=int, default=0, help="with --random")
    parser.add_argument("--card", type=Path,
                        help="JSON with 'training' and 'quality' facts for the sidecar (trained models)")
    args = parser.parse_args(argv)

    if args.identity:
        write_identity(args.out, m=args.m, width=args.width)
        print(f"wrote {args.out} and its .json: identity, m {args.m}, width {args.width}")
        return
    if args.random:
        torch.manual_seed(args.seed)
        model = STRCNN(args.variant, m=args.m, width=args.width, residual=not args.no_residual)
    elif not args.checkpoint.is_file():
        best = " (a run writes best.pt only once a validation figure beats the best so far while the do-no-harm " \
               "rule holds; last.pt is always there)" if args.checkpoint.name == "best.pt" else ""
        raise SystemExit(f"{args.checkpoint}: no such checkpoint{best}")
    else:
        try:
            model = load_checkpoint(args.checkpoint)
        except (ValueError, OSError) as e:
            raise SystemExit(str(e)) from None
    card = json.loads(args.card.read_text()) if args.card else {}
    side = export(model, args.out, trained=not args.random, training=card.get("training"),
                  quality=card.get("quality"))
    print(f"wrote {args.out} and its .json and .pt: variant {side['variant']}, m {side['m']}, "
          f"width {side['width']}, trained {side['trained']}")


if __name__ == "__main__":
    main()
