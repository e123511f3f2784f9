#!/usr/bin/env bash
# One lent GPU session (bench/GPU.md): two device calls on the same warm machine.
#
#   bash bench/gpu_session.sh check                 # ~5 min: bf16 check, step times, speed, quality calibration
#   bash bench/gpu_session.sh quality STEPS SECONDS [PLAN [SEEDS...]]  # quality_grid.py's PLAN (gpu), pre-training
#                                                   # STEPS, within SECONDS; plan gpu3x also scores tiles
#   bash bench/gpu_session.sh e2e                   # ~2 min: lrc segment's stages (no nnU-Net), import times
#   bash bench/gpu_session.sh api [BATCH]           # ~4 min: lrc serve with GPU workers: upload -> SEG ready,
#                                                   # a batch with one infer worker, then with two
#   (api carries bench/out/whl_api instead: `bash bench/gpu_wheels.sh api`; untested on a device so far)
#
# Carry bench/out/whl_speed (wheels: `bash bench/gpu_wheels.sh speed`) and .gpudata (a copy of
# ../shared/data). Every part has its own time limit, so one failing part leaves the others'
# results; everything is packed into one $OUT/<mode>.tar.gz (the device returns at most 8 files).
set -u
cd "$(dirname "$0")/.."
mode=${1:-check}
out=$(mktemp -d)
trap 'tar czf "${OUT:-bench/out}/$mode.tar.gz" -C "$out" .' EXIT
if [ "$mode" = api ]; then  # lrc serve starts its workers as processes: a venv with the project installed
    [ -x /tmp/venv/bin/lrc ] || { python3 -m venv --system-site-packages /tmp/venv &&
        /tmp/venv/bin/python -m pip install -q --no-index --no-deps --no-compile bench/out/whl_api/*.whl &&
        /tmp/venv/bin/python -m pip install -q --no-index --no-deps --no-build-isolation -e .; } || exit 1
    export PYTHONUNBUFFERED=1
else
    [ -d /tmp/site/monai ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site bench/out/whl_speed/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
fi
part() {  # part NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, say how it ended
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "$name: rc=$? after $((SECONDS - start)) s"
}
case $mode in
check)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/nvidia.txt"
    part gpu_check 110 env OUT="$out" python3 bench/gpu_check.py --shared-data .gpudata/data --steps 300
    part speed 170 env OUT="$out" bash bench/speed_gpu.sh cuda
    part warm 60 python3 bench/quality.py --preset full --warm 14
    # Calibration: every plan cell at once, 100 pre-training and 100 fine-tuning steps.
    part calibrate 75 python3 bench/quality_grid.py --preset full --device cuda --warm 0 --seeds 0 --k 1 \
        --test dev --pretrain-steps 100 --finetune-steps 100 --workers 7 --deadline 70 \
        --results "$out/quality_calibration.json"
    grep -h "done\|seconds" "$out/calibrate.log" | tail -12
    ;;
quality)
    steps=${2:-3000}
    seconds=${3:-400}
    plan=${4:-gpu}
    seeds=("${@:5}")
    [ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
    workers=$((${#seeds[@]} * 3))  # three a seed (gpu3x's arms; the gpu plan's earlier nine for three seeds)
    part quality "$seconds" python3 bench/quality_grid.py --preset full --device cuda --warm 14 --plan "$plan" \
        --seeds "${seeds[@]}" --pretrain-steps "$steps" --workers $((workers < 14 ? workers : 14)) \
        --deadline $((seconds - 30)) --results "$out/quality_gpu_$plan.json" --overlay "$out/quality_overlay.png"
    tail -40 "$out/quality.log"
    if [ "$plan" = gpu3x ]; then  # the same models by tiles of their patch (whole slices above)
        part fov 100 python3 bench/inference_fov.py --preset full --device cuda --no-plot \
            --results "$out/quality_gpu_fov.json" \
            --tags scratch-noflip weak-ftnoflip-combined weak-ftnoflip-lr3
        tail -30 "$out/fov.log"
    fi
    ;;
e2e)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/nvidia.txt"
    # Where a cold start's seconds go: the first import on a fresh machine, then again.
    for pass in first second; do
        part "importtime_$pass" 30 python3 -X importtime -c "import lrc.cli, lrc.infer, lrc.io.seg"
    done
    part e2e 100 env OUT="$out" SKIP_NNUNET=1 bash bench/speed_gpu.sh cuda
    tail -25 "$out/e2e.log"
    ;;
api)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/nvidia.txt"
    part api 300 /tmp/venv/bin/python bench/speed_api.py e2e --device cuda --shared-data .gpudata/data \
        --batch "${2:-6}" --work "$out/work" --out "$out/speed_api_e2e_cuda.json"
    tail -20 "$out/api.log"
    rm -rf "$out/work"  # the series and the service's data folder: not worth bringing back
    ;;
esac
