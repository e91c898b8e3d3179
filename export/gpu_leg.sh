#!/usr/bin/env bash
# One leg of the main training run on a CUDA machine: resume runs/main/last.pt, train for MINUTES with the
# gpu preset (batch 48 of 13-frame 128x128 clips, bf16, channels_last, scenes drawn by 12 CPU workers and
# rendered on the GPU), and write last.pt and log.txt into OUT every minute, so that a leg cut short still
# returns its work. Extra options
# are passed on (a later option overrides an earlier one). Pause the CPU run first; afterwards copy OUT/last.pt
# to runs/main/, append OUT/log.txt to runs/main/log.txt and resume on the CPU with `--resume --preset cpu`.
#
#   bash export/gpu_leg.sh OUT [MINUTES] [OPTIONS...]
set -euo pipefail
out=${1:?usage: bash export/gpu_leg.sh OUT [MINUTES] [OPTIONS...]}
minutes=${2:-8}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
exec python -m export.train --resume-from runs/main/last.pt --out "$out" --preset gpu --device cuda \
    --synthesis torch --workers 12 --minutes "$minutes" --save-minutes 1 --eval-every 1000 --log-every 20 "$@"
