"""Datasets: labelled cases (image series + label map), each label checked against its image on arrival.

The checks hold no image or NIfTI label map whole (:func:`app.services.studies.read_upload`,
:func:`lrc.io.label_maps.inspect_label`): a dataset upload costs the API no more memory than a study upload.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.services import studies
from app.services.jobs import utc
from core import blobs
from core.context import Context
from core.errors import InvalidRequest, NotFound
from core.records.studies import get_series, series_entries
from core.records.tables import Dataset, DatasetCase
from lrc.io import ImageIOError, VolumeInfo
from lrc.io.label_maps import inspect_label
from lrc.io.labels import LabelTable
from lrc.label_match import check_structures

NAME_MAX = 128


def parse_labels(text: str) -> dict[str, str]:
    """``{"5": "liver"}`` from the form field ``labels``: values 1 to 65535, names of 1 to 64 printable
    characters, each structure once (by name or SNOMED CT code), at most 255 of them."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"'labels' is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not raw or "0" in raw:
        raise InvalidRequest('\'labels\' needs at least one label, e.g. {"5": "liver"}, and 0 is the background')
    if not all(isinstance(v, str) for v in raw.values()):
        raise InvalidRequest('\'labels\' maps each label value to a name, e.g. {"5": "liver"}')
    try:
        table = check_structures(LabelTable.from_dict(raw))
    except ValueError as exc:
        raise InvalidRequest(f"'labels': {exc}") from exc
    return {str(v): table[v].name for v in table}


def parse_cases(text: str, limit: int) -> list[dict[str, Any]]:
    """The form field ``cases``: ``[{"image": FILE or {"series_id": ID}, "label": FILE}]``, at most ``limit``."""
    try:
        cases = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"'cases' is not valid JSON ({exc})") from exc
    if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) and "label" in c for c in cases):
        raise InvalidRequest('\'cases\' must be a non-empty list of {"image": ..., "label": FILE}')
    if len(cases) > limit:
        raise InvalidRequest(
            f"'cases' lists {len(cases)} cases; a dataset holds at most {limit} (LRC_MAX_DATASET_CASES)"
        )
    return cases


def parse_name(text: str) -> str:
    """A dataset's name: 1 to 128 printable characters (leading and trailing spaces dropped)."""
    name = text.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise InvalidRequest(f"'name' is 1 to {NAME_MAX} printable characters, got {len(name)} characters")
    return name


def create(
    ctx: Context,
    name: str,
    labels: dict[str, str],
    cases: list[dict[str, Any]],
    files: dict[str, studies.Upload],
    folder: Path,
    created_by: str | None,
    project: str,
) -> Dataset:
    """Store the cases' images as studies, check and store each label map, record the dataset (all in ``project``).

    All or nothing: the studies, label maps and the dataset are recorded in one transaction after every
    case was checked; a request that fails at any case leaves no record and no blob it created (blobs
    other records use stay).

    Raises:
        InvalidRequest: a case names a file that was not sent.
        LabelGeometryMismatch: a label map is not on its image's grid (the message gives both grids).
        ImageIOError: an image or label cannot be read.
    """
    dataset = Dataset(name=name, labels=labels, created_by=created_by, project=project)
    staged: dict[str, studies.Staged] = {}  # by upload key: the studies of this request's image files
    label_blobs: dict[str, Path] = {}
    with ctx.store.undo_on_error(partial(blobs.discard, ctx)):
        for position, case in enumerate(cases):
            where = folder / f"case{position}"
            series_id, image = _image(ctx, case.get("image"), files, where, created_by, project, position, staged)
            label_upload = files.get(str(case["label"]))
            if label_upload is None:
                raise InvalidRequest(f"case {position}: label file {case['label']!r} was not sent in 'files'")
            try:
                inspect_label(label_upload.path, image)
            except ImageIOError as exc:
                raise InvalidRequest(f"case {position}, label {label_upload.name}: {exc}") from exc
            sha, _ = ctx.store.put_file(label_upload.path)
            label_blobs[sha] = label_upload.path
            dataset.cases.append(
                DatasetCase(position=position, series_id=series_id, label_name=label_upload.name, label_sha256=sha)
            )
        with ctx.db.session() as session:
            for study in staged.values():
                if study.new:
                    studies.record(session, ctx, study)
            blobs.record(session, ctx.store, label_blobs)
            session.add(dataset)
    return dataset


def _image(
    ctx: Context,
    ref: Any,
    files: dict[str, studies.Upload],
    folder: Path,
    created_by: str | None,
    project: str,
    position: int,
    staged: dict[str, studies.Staged],
) -> tuple[str, VolumeInfo]:
    """The series of a case (a stored one, or one read from a file sent) and its grid, checked without its voxels.

    A file's study is staged, not recorded (see :func:`create`); ``staged`` holds this request's, so that
    an image sent for two cases is one study.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(ref, dict) and "series_id" in ref:
        with ctx.db.session() as session:
            series = get_series(session, str(ref["series_id"]), project)
        paths = ctx.store.materialize(series_entries(series), folder / "series")
        return series.id, _inspect(ctx, paths, folder)
    upload = files.get(str(ref))
    if upload is None:
        raise InvalidRequest(f"case {position}: image {ref!r} is neither a file sent in 'files' nor {{\"series_id\"}}")
    key = studies.upload_key([upload])
    if key not in staged:
        staged[key] = studies.stage(ctx, [upload], folder, created_by, project)
    study = staged[key].study
    if len(study.series) != 1:
        raise InvalidRequest(f"case {position}: image {upload.name} holds {len(study.series)} series; send one")
    series = study.series[0]
    if staged[key].volumes:  # read just now
        return series.id, staged[key].volumes[0]
    paths = ctx.store.materialize(series_entries(series), folder / "series")
    return series.id, _inspect(ctx, paths, folder)


def _inspect(ctx: Context, paths: list[Path], folder: Path) -> VolumeInfo:
    """The one series in a stored series' files, read as uploads are (:func:`app.services.studies.read_upload`)."""
    settings = ctx.settings
    found, _ = studies.read_upload(paths, folder / "inspect", settings.max_upload_bytes, settings.max_voxels)
    return found[0][0]


def view(dataset: Dataset) -> dict[str, Any]:
    """The public form of a dataset."""
    return {
        "id": dataset.id,
        "name": dataset.name,
        "labels": dataset.labels,
        "cases": [{"series_id": c.series_id, "label": c.label_name} for c in dataset.cases],
        "created_at": utc(dataset.created_at),
    }


def find(ctx: Context, project: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """The datasets of ``project``, newest first."""
    with ctx.db.session() as session:
        query = (
            select(Dataset)
            .where(Dataset.project == project)
            .order_by(Dataset.created_at.desc(), Dataset.id)
            .limit(limit)
            .offset(offset)
        )
        return [view(dataset) for dataset in session.scalars(query)]


def get(ctx: Context, dataset_id: str, project: str) -> dict[str, Any]:
    """One dataset of ``project``."""
    with ctx.db.session() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.project != project:
            raise NotFound("dataset", dataset_id)
        return view(dataset)
