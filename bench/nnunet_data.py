"""The volumes of the nnU-Net comparison, written once in nnU-Net's raw layout that both arms read.

A *fold* names its labelled (training) and held-out (test) volumes and the reference label table:

* ``A/10->A`` and ``A->C``: the real CTs of ``shared/data`` (``bench/ablation.py``'s folds; 5 organs
  by TotalSegmentator's numbers: liver, spleen, stomach, aorta, inferior vena cava);
* ``syn-k1``, ``syn-k2``, ...: the synthetic cohort of ``bench/quality.py`` (8 organs), ``k``
  labelled phantoms ``100 + 10 * seed ..`` and the ``dev`` test phantoms ``2000 ..``.

:func:`write_raw` writes ``imagesTr/`` and ``labelsTr/`` (the organs renumbered 1..n in the
table's order, everything else background) and ``dataset.json``; ``lrc finetune``'s arm trains on
these same files, so both arms see exactly the same voxels. Test images are written beside them
(``imagesTs/``) for nnU-Net's predictor; both arms predict these files and are scored against the
test label maps in their original values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SYNTHETIC_TESTS = 6  # bench/quality.py's reduced preset: dev test phantoms 2000..2005


@dataclass(frozen=True)
class Fold:
    """Labelled and held-out (image, label map) pairs, and the table of the label maps' values."""

    name: str
    train: list[tuple[Any, Any]]
    test: list[tuple[Any, Any]]
    table: Any  # lrc.io.labels.LabelTable of the reference values


def seeded(fold: str) -> bool:
    """Whether the fold's labelled volumes depend on the run seed (the synthetic cohort's do)."""
    return fold.startswith("syn-")


def load_fold(fold: str, seed: int, shared_data: Path) -> Fold:
    """The volumes of ``fold`` (``seed`` picks the synthetic cohort's labelled phantoms)."""
    from lrc.io.labels import LabelTable

    if seeded(fold):
        from quality import phantom

        from lrc.synthetic import label_table

        k = int(fold.removeprefix("syn-k"))
        train = [phantom(100 + 10 * seed + i) for i in range(k)]
        test = [phantom(2000 + i) for i in range(SYNTHETIC_TESTS)]
        return Fold(fold, train, test, label_table())
    from ablation import ORGANS, every_tenth
    from tiles_real import subjects

    a, c = subjects(shared_data).values()
    pairs = {"A->C": ([a], [c]), "A/10->A": ([every_tenth(a, 0)], [every_tenth(a, 5)])}
    if fold not in pairs:
        raise SystemExit(f"unknown fold {fold!r}: A->C, A/10->A or syn-kN")
    train, test = pairs[fold]
    return Fold(fold, train, test, LabelTable.from_names(ORGANS))


def organ_names(table: Any) -> list[str]:
    """The structures of a label table in its order: nnU-Net's labels 1..n."""
    return [table[value].name for value in table]


def write_raw(folder: Path, fold: Fold) -> dict[str, Any]:
    """Write ``fold`` as an nnU-Net raw dataset in ``folder``; its ``dataset.json``."""
    from lrc.io import Volume, write_nifti
    from lrc.io.geometry import align_to

    names = organ_names(fold.table)
    for part in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    for number, (image, label) in enumerate(fold.train):
        aligned = align_to(label, image).array
        renumbered = np.zeros(aligned.shape, dtype=np.uint8)
        for index, value in enumerate(fold.table, start=1):
            renumbered[aligned == value] = index
        write_nifti(image, folder / "imagesTr" / f"case_{number:03d}_0000.nii.gz")
        write_nifti(Volume(renumbered, image.affine), folder / "labelsTr" / f"case_{number:03d}.nii.gz")
    for number, (image, _) in enumerate(fold.test):
        write_nifti(image, folder / "imagesTs" / f"test_{number:03d}_0000.nii.gz")
    dataset = {
        "name": fold.name,
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{name: index for index, name in enumerate(names, start=1)}},
        "numTraining": len(fold.train),
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1) + "\n")
    return dataset


def read_training(folder: Path) -> tuple[list[tuple[Any, Any]], Any]:
    """The labelled cases of a raw dataset and the table of their values 1..n (what ``lrc finetune`` gets)."""
    from lrc.io import read_nifti
    from lrc.io.labels import LabelTable

    labels = json.loads((folder / "dataset.json").read_text())["labels"]
    table = LabelTable.from_names({value: name for name, value in labels.items() if value})
    cases = [
        (read_nifti(image, modality="CT"), read_nifti(folder / "labelsTr" / image.name.replace("_0000", "")))
        for image in sorted((folder / "imagesTr").glob("*.nii.gz"))
    ]
    return cases, table


def test_images(folder: Path) -> list[Path]:
    """The held-out images of a raw dataset, in the fold's order."""
    return sorted((folder / "imagesTs").glob("*.nii.gz"))
