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

from lrc.io import ImageIOError, read_volume
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
        ManifestError: unreadable or malformed JSON, missing keys, missing files, or an image or
            label map that cannot be read or does not fit its image (the message names the case).
    """
    path = Path(path)
    data = _read(path)
    try:
        labels = check_structures(LabelTable.from_dict(data["labels"]))
    except KeyError:
        raise ManifestError(f'{path}: no "labels" (label value -> structure name, e.g. {{"1": "liver"}})') from None
    except ValueError as exc:
        raise ManifestError(f'{path}: "labels": {exc}') from exc
    result: dict[str, list[Case]] = {}
    for part in parts:
        entries = data.get(part) or []
        if not isinstance(entries, list):
            raise ManifestError(f'{path}: "{part}" must be a list of cases ({{"image": ..., "label": ...}})')
        result[part] = [_case(path, f"{part}[{number}]", entry, series) for number, entry in enumerate(entries)]
    if required is not None and not result.get(required):
        raise ManifestError(f"{path}: {required!r} lists no cases")
    if not any(result.values()):
        raise ManifestError(f"{path}: none of {', '.join(repr(p) for p in parts)} lists a case")
    return Manifest(labels, result)


def _read(path: Path) -> dict[str, Any]:
    """The manifest's JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not a JSON manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestError(
            f'{path}: a manifest is a JSON object ({{"labels": ..., "train": [...]}}), not a {type(data).__name__}'
        )
    return data


def _case(path: Path, where: str, entry: Any, series: int | str | None) -> Case:
    """One case of the manifest at ``path`` (``where``: ``train[0]``), read and checked."""
    if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
        raise ManifestError(f'{path}: {where} needs "image" and "label"')
    if not all(isinstance(entry[key], str) and entry[key] for key in ("image", "label")):
        raise ManifestError(f'{path}: {where}: "image" and "label" are paths (text)')
    image_path, label_path = path.parent / entry["image"], path.parent / entry["label"]
    for item in (image_path, label_path):
        if not item.exists():
            raise ManifestError(f"{path}: {where}: {item} does not exist")
    chosen = entry.get("series", series)
    if not (chosen is None or isinstance(chosen, int | str)) or isinstance(chosen, bool):
        raise ManifestError(f"{path}: {where}: 'series' is an index or a SeriesInstanceUID")
    try:
        image = read_volume(image_path, series=chosen)
    except ImageIOError as exc:
        raise ManifestError(f"{path}: {where}: image {entry['image']}: {exc}") from exc
    try:
        return image, read_label(label_path, image)
    except ImageIOError as exc:
        raise ManifestError(f"{path}: {where}: label {entry['label']}: {exc}") from exc
