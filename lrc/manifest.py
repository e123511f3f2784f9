"""Labelled-data manifests for ``lrc finetune`` and ``lrc evaluate``.

A JSON file::

    {"labels": {"1": "liver", "2": "spleen"},
     "train": [{"image": "ct1.nii.gz", "label": "ct1_seg.nii.gz"}, ...],
     "validation": [...], "test": [...]}

Paths are relative to the manifest's folder (or absolute); images may be DICOM folders/zips or
NIfTI; labels NIfTI label maps or DICOM SEG files (read onto their image). An image that holds
several series names one with ``"series"``: its index as ``lrc info`` lists it, or its
SeriesInstanceUID. ``validation`` and ``test`` are optional. Every label map is checked against its
image's grid when read. ``labels`` names the structures of the label maps' values; a model meets
them by name (or SNOMED CT code), so the values need not be the model's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrc.io import read_volume
from lrc.io.label_maps import read_label
from lrc.io.labels import LabelTable
from lrc.io.volume import Volume
from lrc.label_match import check_structures

Case = tuple[Volume, Volume]


class ManifestError(ValueError):
    """A manifest is malformed or names files that cannot be used."""


@dataclass
class Manifest:
    """Parsed manifest: the label table and the cases of each part."""

    labels: LabelTable
    parts: dict[str, list[Case]]


def load_manifest(
    path: str | os.PathLike[str],
    parts: tuple[str, ...] = ("train", "validation", "test"),
    required: str | None = "train",
    series: int | str | None = None,
) -> Manifest:
    """Read a manifest and the images and label maps it names.

    Args:
        path: the manifest.
        parts: the parts to read (others are not opened).
        required: the part that must list cases; ``None``: any of ``parts`` will do.
        series: the series of each image that names none (see :func:`lrc.io.read_volume`).

    Raises:
        ManifestError: malformed JSON, missing keys, or missing files.
        ImageIOError: an image or label map cannot be read or does not fit its image.
    """
    path = Path(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        labels = check_structures(LabelTable.from_dict(data["labels"]))
    except (OSError, json.JSONDecodeError, KeyError, ValueError, AttributeError) as exc:
        raise ManifestError(f"{path}: not a valid manifest ({type(exc).__name__}: {exc})") from exc
    result: dict[str, list[Case]] = {}
    for part in parts:
        entries = data.get(part) or []
        cases = []
        for number, entry in enumerate(entries):
            try:
                image_path = path.parent / entry["image"]
                label_path = path.parent / entry["label"]
            except (KeyError, TypeError) as exc:
                raise ManifestError(f"{path}: {part}[{number}] needs 'image' and 'label'") from exc
            for item in (image_path, label_path):
                if not item.exists():
                    raise ManifestError(f"{path}: {part}[{number}]: {item} does not exist")
            chosen = entry.get("series", series)
            if not (chosen is None or isinstance(chosen, int | str)) or isinstance(chosen, bool):
                raise ManifestError(f"{path}: {part}[{number}]: 'series' is an index or a SeriesInstanceUID")
            image = read_volume(image_path, series=chosen)
            cases.append((image, read_label(label_path, image)))
        result[part] = cases
    if required is not None and not result.get(required):
        raise ManifestError(f"{path}: {required!r} lists no cases")
    if not any(result.values()):
        raise ManifestError(f"{path}: none of {', '.join(repr(p) for p in parts)} lists a case")
    return Manifest(labels, result)
