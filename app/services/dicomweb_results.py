"""DICOMweb retrieve side (PS3.18 10.4, 10.6) of the instances the service produced: SEG and RTSTRUCT.

Each instance is recorded at export (:func:`core.instance_headers.describe`, called by the export
runner) with the attributes QIDO-RS answers with, as DICOM JSON, so that a search reads no file.
WADO-RS reads the stored files: the instances as they were written, their headers as metadata.
Instances exported before this index existed are recorded at start (:func:`index_missing`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.errors import InvalidDicomError
from sqlalchemy.exc import IntegrityError

from core.context import Context
from core.errors import InvalidQuery, NotAcceptable, NotFound
from core.instance_headers import LEVEL_TAGS, describe
from core.records import instances as records
from core.records.instances import Match
from core.records.tables import ResultInstance
from lrc.writers import writer_names

log = logging.getLogger(__name__)

DICOM_FORMATS = writer_names(needs_dicom=True)
MAX_LIMIT = 1000
# Search keys (PS3.18 table 10.6.1-5) matched here, by keyword; each takes a value or a comma-separated list.
KEYS = {
    "StudyInstanceUID": "study_instance_uid",
    "SeriesInstanceUID": "series_instance_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "SOPClassUID": "sop_class_uid",
    "Modality": "modality",
    "PatientID": "patient_id",
}
IGNORED = {"includefield", "fuzzymatching"}  # every cached attribute is returned; matching is exact


@dataclass
class SearchResult:
    """A QIDO-RS answer: DICOM JSON datasets and the query parameters that were not applied."""

    datasets: list[dict[str, Any]]
    ignored: list[str] = field(default_factory=list)


def index_missing(ctx: Context) -> int:
    """Record exported instances that are not recorded yet (exports from before the index); how many."""
    with ctx.db.session() as session:
        done = records.indexed_outputs(session)
        todo = [
            (seg.id, fmt, sha, seg.project)
            for seg in records.exported_segmentations(session)
            for fmt, sha in seg.outputs.items()
            if fmt in DICOM_FORMATS and (seg.id, fmt) not in done
        ]
    added = 0
    for segmentation_id, fmt, sha, project in todo:
        try:
            instance = describe(ctx.store.path(sha), segmentation_id, fmt, sha, project)
            with ctx.db.session() as session:
                added += records.add_instance(session, instance)
        except (OSError, InvalidDicomError, AttributeError, IntegrityError) as exc:  # missing file, odd header, race
            log.warning("could not index the %s of segmentation %s: %s", fmt, segmentation_id, exc)
    return added


def _match(params: Iterable[tuple[str, str]], **path: str | None) -> tuple[Match, list[str]]:
    """Search keys and paging from query parameters (keywords or tags as ``0020000D``)."""
    values: dict[str, list[str]] = {field: [v] for field, v in path.items() if v}
    page = {"limit": 100, "offset": 0}
    ignored: list[str] = []
    for name, value in params:
        if name in page:
            if not value.isdigit():
                raise InvalidQuery(f"{name} must be a non-negative integer, got {value!r}")
            page[name] = min(int(value), MAX_LIMIT) if name == "limit" else int(value)
            continue
        keyword = name
        if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
            keyword = keyword_for_tag(int(name, 16)) or name
        field_name = KEYS.get(keyword)
        wanted = [v.strip() for v in value.split(",") if v.strip() not in ("", "*")]
        if field_name is None:
            if name not in IGNORED and (tag_for_keyword(keyword) is None or wanted):
                ignored.append(name)
            continue
        if any("*" in v or "?" in v for v in wanted):
            raise InvalidQuery(f"{keyword} is matched exactly here: no wildcards ({value!r})")
        if wanted:
            previous = values.get(field_name)
            values[field_name] = [v for v in wanted if previous is None or v in previous]
            if not values[field_name]:
                values[field_name] = [""]  # contradicts the path: nothing matches
    return Match(**values, **page), ignored  # type: ignore[arg-type]


def _counts(level: str, group: records.Group) -> dict[str, Any]:
    if level == "study":
        return {
            "00080061": {"vr": "CS", "Value": group.modalities},  # ModalitiesInStudy
            "00201206": {"vr": "IS", "Value": [group.series]},  # NumberOfStudyRelatedSeries
            "00201208": {"vr": "IS", "Value": [group.instances]},  # NumberOfStudyRelatedInstances
        }
    return {"00201209": {"vr": "IS", "Value": [group.instances]}}  # NumberOfSeriesRelatedInstances


def _select(attributes: dict[str, Any], level: str) -> dict[str, Any]:
    wanted = {f"{tag_for_keyword(k):08X}" for k in LEVEL_TAGS[level]}
    return {tag: value for tag, value in attributes.items() if tag in wanted}


def _url(base: str, instance: ResultInstance, level: str) -> dict[str, Any]:
    url = f"{base.rstrip('/')}/dicomweb/studies/{instance.study_instance_uid}"
    if level != "study":
        url += f"/series/{instance.series_instance_uid}"
    if level == "instance":
        url += f"/instances/{instance.sop_instance_uid}"
    return {"00081190": {"vr": "UR", "Value": [url]}}  # RetrieveURL


def search(
    ctx: Context, project: str, level: str, params: Iterable[tuple[str, str]], base: str, study: str | None = None,
    series: str | None = None,
) -> SearchResult:  # fmt: skip
    """QIDO-RS: produced studies, series or instances (``level``) of ``project`` matching the query parameters.

    Raises:
        InvalidQuery: a bad ``limit``/``offset`` or a wildcard in a UID.
    """
    match, ignored = _match(params, study_instance_uid=study, series_instance_uid=series)
    datasets: list[dict[str, Any]] = []
    with ctx.db.session() as session:
        if level == "instance":
            for instance in records.find_instances(session, project, match):
                datasets.append({**_select(instance.attributes, level), **_url(base, instance, level)})
        else:
            for group in records.find_groups(session, project, match, level):
                attributes = _select(group.first.attributes, level)
                datasets.append({**attributes, **_counts(level, group), **_url(base, group.first, level)})
    return SearchResult([dict(sorted(d.items())) for d in datasets], ignored)


def _instances(ctx: Context, project: str, study: str, series: str | None, sop: str | None) -> list[ResultInstance]:
    match = Match(
        study_instance_uid=[study],
        series_instance_uid=[series] if series else [],
        sop_instance_uid=[sop] if sop else [],
        limit=MAX_LIMIT * 100,
    )
    with ctx.db.session() as session:
        found = records.find_instances(session, project, match)
    if not found:
        what, uid = ("instance", sop) if sop else ("series", series) if series else ("study", study)
        raise NotFound(f"produced {what} (DICOM SEG or RTSTRUCT)", uid or "")
    return found


def retrieve(ctx: Context, project: str, study: str, series: str | None = None, sop: str | None = None) -> list[Path]:
    """WADO-RS: the stored files of a produced study, series or instance of ``project``.

    Raises:
        NotFound: no produced instance there.
    """
    return [ctx.store.path(i.sha256) for i in _instances(ctx, project, study, series, sop)]


def metadata(
    ctx: Context, project: str, study: str, series: str | None = None, sop: str | None = None
) -> list[dict[str, Any]]:
    """WADO-RS metadata: each instance's header as DICOM JSON (without the pixel data), of ``project``.

    Raises:
        NotFound: no produced instance there.
    """
    paths = retrieve(ctx, project, study, series, sop)
    return [pydicom.dcmread(path, stop_before_pixels=True).to_json_dict() for path in paths]


def multipart_related(paths: list[Path], boundary: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The body of a ``multipart/related; type="application/dicom"`` answer, file by file, in chunks."""
    for path in paths:
        with path.open("rb") as source:
            syntax = pydicom.dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID
            source.seek(0)
            yield f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n".encode()
            while data := source.read(chunk):
                yield data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def check_accept(accept: str, produced: tuple[str, ...]) -> None:
    """Refuse an ``Accept`` header that names none of the ``produced`` media types (types compared, not options).

    Raises:
        NotAcceptable: nothing acceptable.
    """
    if not accept.strip():
        return
    for item in accept.split(","):
        media, *options = [p.strip() for p in item.split(";")]
        kind = next((o.split("=", 1)[1].strip('"') for o in options if o.lower().startswith("type=")), None)
        if media in ("*/*", *produced) and (kind is None or kind in ("application/dicom", "*/*")):
            return
    raise NotAcceptable(f"this resource is available as {' or '.join(produced)}, not {accept!r}")
