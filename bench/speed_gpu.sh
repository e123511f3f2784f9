#!/usr/bin/env bash
# The GPU part of the speed benchmarks (issue 9; bench/SPEED.md): `lrc segment`'s stages end to end
# (DICOM in, DICOM SEG out) and the model stage against nnU-Net v2's predictor, on one device.
# Needs no API, Redis or Celery. Writes speed_e2e_<device>.json and speed_nnunet_<device>.json to
# $OUT (else bench/out/gpu) and prints their summaries.
#
#   bash bench/speed_gpu.sh [cuda|cpu]        # default cuda
#
# Settings (environment): SHARED_DATA (folder holding dicom/ct_series_totalseg; default .gpudata/data
# when present, else ../shared/data), SLICES (300), CROP (0: whole slices; an in-plane crop for the
# nnU-Net run, for CPU dry runs), REPEATS (3), PYTHON (python3), SKIP_NNUNET (set: lrc segment only).
# On the GPU machine, first: pip install the wheels of `bash bench/gpu_wheels.sh speed` (bench/SPEED.md).
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda}
py=${PYTHON:-python3}
data=${SHARED_DATA:-}
if [ -z "$data" ]; then
    if [ -d .gpudata/data/dicom/ct_series_totalseg ]; then data=.gpudata/data; else data=../shared/data; fi
fi
slices=${SLICES:-300}
repeats=${REPEATS:-3}
out=${OUT:-bench/out/gpu}
work=${WORK:-/tmp/lrc-speed}
mkdir -p "$out" "$work"
start=$(date +%s)
$py - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
# lrc segment, whole process (twice) and staged (cold, then warm passes with the model loaded).
$py bench/speed_e2e.py --device "$device" --slices "$slices" --repeats 1 --warm "$repeats" \
    --shared-data "$data" --work "$work" --out "$out/speed_e2e_$device.json"
echo "e2e done after $(( $(date +%s) - start )) s"
[ -n "${SKIP_NNUNET:-}" ] && exit 0
# The model stage against nnU-Net's predictor (TotalSegmentator 3d_fullres), same volume and device.
$py bench/speed_peers.py nnunet --device "$device" --slices "$slices" --crop "${CROP:-0}" --repeats "$repeats" \
    --shared-data "$data" --work "$work" --out "$out/speed_nnunet_$device.json"
echo "all done after $(( $(date +%s) - start )) s"
