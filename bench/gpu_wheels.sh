#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (Python 3.12, x86-64) into .whl/ for bench/GPU.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux_2_24_x86_64 --platform manylinux_2_34_x86_64 --platform any)
for spec in monai==1.6.1 pydicom==3.0.2 highdicom==0.28.2 nibabel==5.4.2 scikit-image==0.26.0 typer safetensors \
            pylibjpeg==2.1.0 pylibjpeg-openjpeg pylibjpeg-libjpeg pylibjpeg-rle python-gdcm pillow-jpls \
            imageio tifffile lazy-loader networkx click rich shellingham markdown-it-py mdurl pygments \
            pyjwt typing-extensions packaging; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$spec" || python3 -m pip download -q --no-deps -d .whl "$spec"
done
ls .whl | wc -l
