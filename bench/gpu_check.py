"""The prepared GPU check: bf16 correctness and timings of the learning core on CUDA.

Run on a CUDA machine (see bench/GPU.md for the exact device command and the wheels to carry):

1. correctness: fine-tune a small model on the real CT for ``--steps`` steps, then predict the other
   CT with bf16 autocast and with float32; report the voxel agreement and both Dice scores against
   the silver labels (bf16 must not change the answer);
2. pre-training step time and peak memory: MoCo, LRC, MoCo+LRC (``bench/step_time.py``);
(End-to-end segmentation on the GPU is ``bench/speed_gpu.sh``.)

``--device cpu`` runs the same code on the CPU (a dry run; bf16 autocast is CUDA-only here).
Results go to ``$OUT`` when set (the device tool's folder), else ``bench/results``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def correctness(shared: Path, device: torch.device, steps: int, work: Path) -> dict[str, object]:
    """bf16 against float32 predictions of one fine-tuned model."""
    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.io import read_nifti, read_volume
    from lrc.io.labels import LabelTable
    from lrc.label_match import match_labels
    from lrc.train.finetune import finetune
    from lrc.train.finetune_config import FinetuneConfig

    organs = {5: "liver", 1: "spleen", 6: "stomach", 52: "aorta"}
    a = (
        read_nifti(shared / "nifti/totalseg_ct_abdomen/example_ct.nii.gz", modality="CT"),
        read_nifti(shared / "nifti/totalseg_ct_abdomen/example_seg_fast_force_split.nii.gz"),
    )
    folder = shared / "dicom/ct_series_totalseg"
    c_image, c_label = read_volume(sorted(folder.glob("CT.*"))), read_nifti(folder / "example_seg_dicom.nii.gz")
    started = time.perf_counter()
    model = finetune(
        [a],
        LabelTable.from_names(organs),
        work / "gpu-check-model",
        FinetuneConfig(steps=steps, batch_size=16, patch=128, spacing=1.5, canvas=256),
        validation=[],
        device=device,
    )
    seconds = time.perf_counter() - started
    predictor = Predictor.from_dir(model, device=device)
    bf16 = predictor.predict(c_image)
    fp32 = Predictor(predictor.net, predictor.card, device, bf16=False).predict(c_image)
    assert predictor.card.labels is not None
    matched = match_labels(predictor.card.labels, LabelTable.from_names(organs))
    return {
        "finetune_steps": steps,
        "finetune_seconds": round(seconds, 1),
        "agreement_bf16_fp32": float((bf16.array == fp32.array).mean()),
        "dice_bf16": mean_dice(evaluate(bf16, c_label, matched)),
        "dice_fp32": mean_dice(evaluate(fp32, c_label, matched)),
    }


def main() -> None:
    """Run both checks and write ``gpu_check.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    from lrc.device import resolve_device

    device = resolve_device(args.device)
    out = Path(os.environ.get("OUT") or HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    report["correctness"] = correctness(args.shared_data, device, args.steps, HERE / "out")
    print(json.dumps(report, indent=2), flush=True)
    shared = ["--shared-data", str(args.shared_data)]  # the device's checkout has no ../shared
    for script, extra in (("step_time.py", shared),):
        run = subprocess.run(
            [sys.executable, str(HERE / script), "--device", args.device, *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        report[script] = run.stdout[-4000:] if run.returncode == 0 else f"failed: {run.stderr[-4000:]}"
        print(report[script], flush=True)
    for name in ("step_time",):
        path = HERE / "results" / f"{name}_{device.type}.json"
        if path.exists() and out != HERE / "results":
            (out / path.name).write_text(path.read_text())
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    assert np.isfinite(float(report["correctness"]["dice_bf16"]))  # type: ignore[index]


if __name__ == "__main__":
    main()
