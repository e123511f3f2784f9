"""A cohort of phantoms on disk (NIfTI) and the manifest that lists it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lrc.io.nifti import write_nifti
from lrc.synthetic.config import DEFAULT_CONFIG, PhantomConfig
from lrc.synthetic.phantom import describe_phantom, make_phantom
from lrc.synthetic.tissues import ORGANS


def make_cohort(
    seeds: Iterable[int], out_dir: str | os.PathLike[str], config: PhantomConfig = DEFAULT_CONFIG
) -> list[dict[str, Any]]:
    """Write ``image_XXX.nii.gz`` and ``label_XXX.nii.gz`` per seed (XXX: the seed, 3 digits or more).

    Returns one entry per case: ``image`` and ``label`` (names relative to ``out_dir``), ``seed``,
    ``phase``, ``shape``, ``spacing`` and ``noise_std``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for seed in seeds:
        image, labels = make_phantom(seed, config)
        info = describe_phantom(seed, config)
        names = {"image": f"image_{seed:03d}.nii.gz", "label": f"label_{seed:03d}.nii.gz"}
        write_nifti(image, out / names["image"])
        write_nifti(labels, out / names["label"])
        cases.append(names | {k: v for k, v in info.to_json().items() if k != "hu"})
    return cases


def write_manifest(
    path: str | os.PathLike[str],
    train_cases: Sequence[Mapping[str, Any]],
    validation_cases: Sequence[Mapping[str, Any]] = (),
    test_cases: Sequence[Mapping[str, Any]] = (),
    config: PhantomConfig | None = None,
) -> Path:
    """Write a manifest for :func:`lrc.manifest.load_manifest` listing cases from :func:`make_cohort`.

    Case paths are kept as given: relative ones must be relative to the manifest's folder.
    The generator's configuration is recorded under ``"synthetic"`` when given.
    """
    path = Path(path)

    def entries(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{"image": str(c["image"]), "label": str(c["label"])} | _extras(c) for c in cases]

    data: dict[str, Any] = {"labels": {str(value): name for value, name in ORGANS.items()}}
    data |= {"train": entries(train_cases), "validation": entries(validation_cases), "test": entries(test_cases)}
    if config is not None:
        data["synthetic"] = {"generator": "lrc.synthetic", "config": config.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _extras(case: Mapping[str, Any]) -> dict[str, Any]:
    return {key: case[key] for key in ("seed", "phase") if key in case}
