"""Benchmark: segment a 300-slice 512x512 CT end to end, DICOM in, DICOM SEG out.

Stages timed separately in one warm process (model loaded once, as in a worker): read the
series, predict (window, resample, 2D U-Net over all slices, resample back, arg-max), write the
SEG (BINARY and LABELMAP). The network has the default architecture and random weights: timing
does not depend on the weights' values, and no trained model ships with the repository yet.

Usage: ``python bench/segment_e2e.py [--device auto] [--repeats 3] [--labels 10]``
Writes ``bench/results/segment_e2e_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Time each stage ``--repeats`` times and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--labels", type=int, default=10)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_series import build

    from lrc.device import resolve_device
    from lrc.infer import Predictor
    from lrc.intensity import IntensityWindow
    from lrc.io import read_volume
    from lrc.io.labels import LabelTable
    from lrc.io.seg import write_seg
    from lrc.models import ModelCard
    from lrc.nets.unet import UNet

    device = resolve_device(args.device)
    folder = build(args.shared_data, HERE / "out" / "ct300")
    torch.manual_seed(0)
    table = LabelTable.from_names([f"organ {k}" for k in range(1, args.labels + 1)])
    net = UNet(2, 1, args.labels + 1)
    card = ModelCard(
        kind="segmentation",
        architecture="",
        arguments=dict(net.arguments),
        window=IntensityWindow.for_modality("CT"),
        spacing=(1.5, 1.5, None),
        canvas=256,
        labels=table,
    )
    predictor = Predictor(net, card, device)
    if device.type == "cuda":  # first CUDA call and cuDNN autotuning happen at worker start
        predictor.predict(read_volume(folder))
    stages: dict[str, list[float]] = {"read": [], "predict": [], "seg_binary": [], "seg_labelmap": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            start = time.perf_counter()
            image = read_volume(folder)
            stages["read"].append(time.perf_counter() - start)
            start = time.perf_counter()
            labels = predictor.predict(image)
            if device.type == "cuda":
                torch.cuda.synchronize()
            stages["predict"].append(time.perf_counter() - start)
            # Random weights label almost everything as one class; write a realistic label map instead:
            # 10 organs as boxes over half the slices, on the prediction's grid.
            organs = labels.array * 0
            z = image.shape[2]
            for k in range(args.labels):
                organs[
                    40 + 30 * (k % 5) : 90 + 30 * (k % 5),
                    100 + 150 * (k // 5) : 200 + 150 * (k // 5),
                    z // 4 : 3 * z // 4,
                ] = k + 1
            organs_volume = labels.with_array(organs)
            for kind in ("binary", "labelmap"):
                start = time.perf_counter()
                write_seg(organs_volume, image, table, Path(tmp) / f"{kind}.dcm", segmentation_type=kind)
                stages[f"seg_{kind}"].append(time.perf_counter() - start)
    medians = {k: round(statistics.median(v), 3) for k, v in stages.items()}
    medians["total_binary"] = round(medians["read"] + medians["predict"] + medians["seg_binary"], 3)
    medians["total_labelmap"] = round(medians["read"] + medians["predict"] + medians["seg_labelmap"], 3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    report = {
        "device": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "medians_s": medians,
        "raw_s": stages,
        "shape": list(image.shape),
        "labels": args.labels,
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"segment_e2e_{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["medians_s"], indent=2), name)


if __name__ == "__main__":
    main()
