#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (Python 3.12, x86-64).
#   bash bench/gpu_wheels.sh          -> .whl/ for bench/GPU.md (gpu_check.py; about 60 MB)
#   bash bench/gpu_wheels.sh speed    -> bench/out/whl_speed/ for bench/speed_gpu.sh (about 21 MB: lrc segment
#                                        and nnU-Net's predictor; SimpleITK's 50 MB wheel is left out, see
#                                        bench/speed_peers.py, and so are packages the machine already has)
#   bash bench/gpu_wheels.sh api      -> bench/out/whl_api/ for gpu_session.sh api (lrc serve and its workers,
#                                        without nnU-Net)
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=${1:-check}
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux_2_24_x86_64 --platform manylinux_2_34_x86_64 --platform any)
if [ "$set_name" = speed ]; then
    dest=bench/out/whl_speed
    specs=(monai==1.6.1 pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2 pyjpegls==1.5.1 pylibjpeg==2.1.0
           pylibjpeg-openjpeg==2.6.0 nnunetv2==2.8.1 dynamic_network_architectures==0.4.4 batchgenerators==0.25.5
           blosc2==4.14.1 numexpr==2.14.2 ndindex==1.10.1)
elif [ "$set_name" = api ]; then
    dest=bench/out/whl_api
    specs=(monai==1.6.1 pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2 pyjpegls==1.5.1 pylibjpeg==2.1.0
           pylibjpeg-openjpeg==2.6.0 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 python-multipart==0.0.34
           pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
           annotated-types==0.8.0 typing-inspection==0.4.5 sqlalchemy==2.1.9 greenlet==3.5.6 celery==5.7.0
           kombu==5.7.0 billiard==4.3.2 vine==5.1.0 amqp==5.4.2 click-didyoumean==0.3.1 click-repl==0.4.1
           click-plugins==1.1.1.2 prompt-toolkit==3.0.53 wcwidth==0.9.4 tzdata redis==8.2.0 pynetdicom==3.0.4
           dicognito==0.19.0 psycopg==3.3.9 psycopg-binary==3.3.9)
else
    dest=.whl
    specs=(monai==1.6.1 pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2 scikit-image==0.26.0 typer safetensors
           pylibjpeg==2.1.0 pylibjpeg-openjpeg pylibjpeg-libjpeg pylibjpeg-rle python-gdcm pillow-jpls
           imageio tifffile lazy-loader networkx click rich shellingham markdown-it-py mdurl pygments
           pyjwt typing-extensions packaging)
fi
mkdir -p "$dest"
for spec in "${specs[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$dest" "$spec" || python3 -m pip download -q --no-deps -d "$dest" "$spec"
done
if [ "$set_name" = speed ]; then
    # acvl_utils (nnU-Net's helpers) is published as an sdist only: build its pure-Python wheel here.
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary=:all: -d "$tmp" acvl_utils==0.2.6
    python3 -m pip wheel -q --no-deps "$tmp"/acvl_utils-0.2.6.tar.gz -w "$dest"
    rm -rf "$tmp"
fi
ls "$dest" | wc -l
du -sh "$dest"
