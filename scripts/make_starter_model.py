"""Train the starter model that `lrc serve` registers on first start, from the CTs in data/totalsegmentator.

A fresh install must be able to segment something. This script fine-tunes a 2D U-Net from
scratch on subject A (122x101x112 abdominal CT) and holds out subject C (the 20-slice DICOM CT of
another scanner) for the card's held-out Dice. Both label maps are TotalSegmentator predictions,
so the score is agreement with TotalSegmentator, and one held-out volume says little: the card
says so. Labels are renumbered 1 liver, 2 spleen, 3 stomach, 4 aorta (organs present in both).

    .venv/bin/python scripts/make_starter_model.py [--steps 1500] [--out lrc/assets/starter_ct_abdomen]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from lrc.io import Volume, read_nifti, read_volume
from lrc.io.labels import LabelTable
from lrc.model_dirs.store import load_model, read_card, save_model
from lrc.train.finetune import FinetuneConfig, finetune

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "totalsegmentator"
ORGANS = {5: "liver", 1: "spleen", 6: "stomach", 52: "aorta"}  # TotalSegmentator value -> name


def renumbered(labels: Volume) -> Volume:
    """TotalSegmentator values -> 1..4 in ORGANS order; everything else background."""
    lut = np.zeros(max(int(labels.array.max()), max(ORGANS)) + 1, dtype=np.uint8)
    for index, value in enumerate(ORGANS, start=1):
        lut[value] = index
    return Volume(lut[labels.array], labels.affine, modality=labels.modality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "lrc" / "assets" / "starter_ct_abdomen")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    train = (
        read_nifti(DATA / "example_ct.nii.gz", modality="CT"),
        read_nifti(DATA / "example_seg_fast_force_split.nii.gz"),
    )
    held_out = (read_volume(sorted((DATA / "ct_series").glob("CT.*"))), read_nifti(DATA / "example_seg_dicom.nii.gz"))
    cases = [(image, renumbered(labels)) for image, labels in (train, held_out)]
    table = LabelTable.from_names({index: name for index, name in enumerate(ORGANS.values(), start=1)})
    config = FinetuneConfig(
        steps=args.steps,
        batch_size=8,
        patch=128,
        lr=1e-3,
        spacing=1.5,
        canvas=256,
        features=(16, 16, 32, 64, 128, 16),
        validate_every=100,
        patience=6,
        seed=args.seed,
    )
    out = finetune([cases[0]], table, args.out, config, validation=[cases[1]], device=args.device)
    # The card tells what this model is, in words, next to the numbers.
    net, card = load_model(out)
    card.training["data_description"] = (
        "Trained on one abdominal CT (TotalSegmentator example_ct.nii.gz, 3 mm) with TotalSegmentator's "
        "predicted labels; held-out score on one other CT (20-slice DICOM series, Siemens, JPEG 2000) against "
        "TotalSegmentator's prediction. A starter to try the service with, not a clinical model: fine-tune it "
        "on your own labelled scans."
    )
    card.training["source"] = "scripts/make_starter_model.py; data/totalsegmentator/README.md (Apache-2.0)"
    save_model(out, net, card)
    print(json.dumps(read_card(out).metrics, indent=2, default=str))  # noqa: T201 - a script's result


if __name__ == "__main__":
    main()
