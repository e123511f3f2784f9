"""A corpus of malformed and hostile inputs for the REST API, generated from the real data.

Every DICOM case starts from a real file (the factory's real CT slice, the real JPEG 2000 CT
series, the real DICOM SEG objects) and is damaged with pydicom or by cutting or flipping its
bytes; every NIfTI case starts from the real TotalSegmentator CT and is rewritten with nibabel.
Each case says what is sent where; the test sends it and expects a 4xx problem document.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import openjpeg
import pydicom
import pydicom.config
from pydicom.dataelem import RawDataElement
from pydicom.encaps import encapsulate
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from tests import dicom_factory

Files = list[tuple[str, tuple[str, bytes, str]]]
OCTETS = "application/octet-stream"


@dataclass
class BadInput:
    """One hostile request: ``method path`` with httpx keyword arguments."""

    category: str
    name: str
    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``category/name``, for reports."""
        return f"{self.category}/{self.name}"


def upload(category: str, name: str, files: list[tuple[str, bytes]]) -> BadInput:
    """A study upload of ``(file name, content)`` pairs."""
    parts: Files = [("files", (file_name, content, OCTETS)) for file_name, content in files]
    return BadInput(category, name, "POST", "/v1/studies", {"files": parts})


# --- DICOM ---------------------------------------------------------------------------------------


def _slice(shared_data: Path, folder: Path) -> Path:
    """One real CT slice with every UID (64x64, Explicit VR Little Endian)."""
    return dicom_factory.write_series(shared_data, folder, dicom_factory.line(1), size=64)[0]


def _encode(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _claim_syntax(raw: bytes, syntax: str) -> bytes:
    """The same data set bytes behind a file meta group that claims another transfer syntax."""
    ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
    group_length = int(ds.file_meta.FileMetaInformationGroupLength)
    body = raw[132 + 12 + group_length :]  # preamble, 'DICM', the group length element, the group
    meta = ds.file_meta
    meta.TransferSyntaxUID = UID(syntax)
    buffer = io.BytesIO()
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return raw[:132] + buffer.getvalue() + body


@contextlib.contextmanager
def _unvalidated() -> Iterator[None]:
    """Let pydicom set and write values that break their VR (hostile input is the point)."""
    settings = pydicom.config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = saved


def _edited(template: Path, edit: Callable[[pydicom.Dataset], None]) -> bytes:
    with _unvalidated():
        ds = pydicom.dcmread(template)
        edit(ds)
        return _encode(ds)


def _set(**values: Any) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return edit


def _raw(tag: int, vr: str, value: bytes) -> Callable[[pydicom.Dataset], None]:
    """Put bytes that break the element's VR (pydicom would refuse the value itself)."""

    def edit(ds: pydicom.Dataset) -> None:
        ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)

    return edit


def _delete(*keywords: str) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        for keyword in keywords:
            delattr(ds, keyword)

    return edit


def _as_report(ds: pydicom.Dataset) -> None:
    """A Basic Text SR made from the real CT header: no pixels, an SR SOP class."""
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, keyword)
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.Modality = "SR"


def dicom_cases(shared_data: Path, folder: Path) -> list[BadInput]:
    """Truncated, corrupted, mis-declared, memory-bomb and non-image DICOM."""
    path = _slice(shared_data, folder / "slice")
    raw = path.read_bytes()
    cases = [
        upload("dicom-truncated", f"at-{offset}", [("slice.dcm", raw[:offset])])
        for offset in (0, 100, 132, 140, 400, 1000, len(raw) // 2, len(raw) - 1000, len(raw) - 1)
    ]
    jpeg2000 = sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))[0].read_bytes()
    cases += [
        upload("dicom-truncated", f"jpeg2000-at-{offset}", [("ct.dcm", jpeg2000[:offset])])
        for offset in (len(jpeg2000) // 2, len(jpeg2000) - 64)
    ]
    rng = random.Random(6)
    for run in range(4):  # bytes flipped in the data set header (after the file meta group)
        damaged = bytearray(raw)
        for _ in range(40):
            damaged[rng.randrange(300, 1200)] ^= 0xFF
        cases.append(upload("dicom-corrupt-header", f"flipped-{run}", [("slice.dcm", bytes(damaged))]))
    for name, edit in {
        "no-pixel-data": _delete("PixelData"),
        "rows-zero": _set(Rows=0),
        "bits-allocated-7": _set(BitsAllocated=7),
        "samples-per-pixel-3": _set(SamplesPerPixel=3),
        "pixel-spacing-zero": _set(PixelSpacing=["0", "0"]),
        "pixel-spacing-nan": _set(PixelSpacing=["NaN", "NaN"]),
        "position-not-numbers": _raw(0x00200032, "DS", b"left\\right\\up "),
        "orientation-degenerate": _set(ImageOrientationPatient=["0", "0", "0", "0", "0", "0"]),
    }.items():
        cases.append(upload("dicom-corrupt-header", name, [("slice.dcm", _edited(path, edit))]))
    for name, syntax in {
        "jpeg2000": JPEG2000Lossless,
        "jpeg-baseline": JPEGBaseline8Bit,
        "rle": RLELossless,
        "big-endian": ExplicitVRBigEndian,
        "deflated": DeflatedExplicitVRLittleEndian,
        "unknown-uid": "1.2.3.4.5.6.7.8.9",
    }.items():
        cases.append(upload("dicom-wrong-transfer-syntax", name, [("slice.dcm", _claim_syntax(raw, syntax))]))
    cases.append(
        upload(
            "dicom-wrong-transfer-syntax",
            "jpeg2000-data-claimed-native",
            [("ct.dcm", _claim_syntax(jpeg2000, ExplicitVRLittleEndian))],
        )
    )
    for name, edit in {
        "rows-columns-65535": _set(Rows=65535, Columns=65535),
        "frames-2e9": _set(NumberOfFrames=2_000_000_000),
        "frames-rows-columns": _set(NumberOfFrames=100_000, Rows=4096, Columns=4096),
        "bits-allocated-64": _set(BitsAllocated=64, BitsStored=64, HighBit=63),
    }.items():
        cases.append(upload("dicom-memory-bomb", name, [("slice.dcm", _edited(path, edit))]))
    seg = shared_data / "dicom" / "seg_highdicom"
    for name, source in {
        "seg-highdicom": seg / "seg_image_ct_binary.dcm",
        "seg-fractional": seg / "seg_image_ct_true_fractional.dcm",
        "seg-dcmqi": shared_data / "dicom" / "seg_dcmqi" / "liver.dcm",
    }.items():
        cases.append(upload("dicom-not-an-image", name, [(source.name, source.read_bytes())]))
    cases.append(upload("dicom-not-an-image", "sr-from-ct-header", [("report.dcm", _edited(path, _as_report))]))
    return cases


def inflation_cases(shared_data: Path, folder: Path) -> list[BadInput]:
    """A series whose compressed slices each look fine but together decode to more than the reader's
    voxel limit (uploads only: C-STORE and STOW tests send one instance per case)."""
    path = _slice(shared_data, folder / "slice")
    return [upload("dicom-memory-bomb", "jpeg2000-inflates", _inflating_series(path))]


def _inflating_series(template: Path, planes: int = 5, side: int = 16384) -> list[tuple[str, bytes]]:
    """``planes`` real slices whose JPEG 2000 data (2.6 kB each) decode to ``side`` x ``side`` zeros:
    1.3 G voxels from 13 kB, what only the reader's voxel limit stops before decoding."""
    code = openjpeg.encode(np.zeros((side, side), np.uint16))
    files = []
    for k in range(planes):
        with _unvalidated():
            ds = pydicom.dcmread(template)
            ds.Rows = ds.Columns = side
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.ImagePositionPatient = [0.0, 0.0, float(k)]
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{k + 1}"
            ds.PixelData = encapsulate([code])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
            files.append((f"slice{k}.dcm", _encode(ds)))
    return files


# --- archives ------------------------------------------------------------------------------------


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _bomb(size: int) -> bytes:
    """One entry of ``size`` zero bytes, deflated (about 1000:1), written in chunks."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("study/zeros.dcm", "w", force_zip64=True) as entry,
    ):
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            entry.write(chunk)
    return buffer.getvalue()


def archive_cases(shared_data: Path, folder: Path) -> list[BadInput]:
    """Zip bombs (one nested), path traversal, absolute paths, symbolic links, broken zips."""
    raw = _slice(shared_data, folder / "zipped").read_bytes()
    good = _zip([("study/slice.dcm", raw)])
    cases = [
        upload("zip-bomb", "zeros-200MiB", [("bomb.zip", _bomb(200 << 20))]),
        upload("zip-bomb", "nested-bomb", [("outer.zip", _zip([("inner.zip", _bomb(64 << 20))], zipfile.ZIP_STORED))]),
        upload("zip-unsafe", "dot-dot", [("evil.zip", _zip([("../../etc/slice.dcm", raw)]))]),
        upload("zip-unsafe", "dot-dot-inside", [("evil.zip", _zip([("study/../../slice.dcm", raw)]))]),
        upload("zip-unsafe", "absolute", [("evil.zip", _zip([("/tmp/slice.dcm", raw)]))]),
        upload("zip-unsafe", "windows-drive", [("evil.zip", _zip([("C:/Windows/slice.dcm", raw)]))]),
        upload("zip-unsafe", "backslash-dot-dot", [("evil.zip", _zip([("..\\..\\slice.dcm", raw)]))]),
        upload("zip-unsafe", "symlink-etc-passwd", [("link.zip", _zip([_symlink("study/passwd.dcm", "/etc/passwd")]))]),
        upload(
            "zip-unsafe",
            "symlink-beside-dicom",
            [("link.zip", _zip([("study/slice.dcm", raw), _symlink("study/up", "../..")]))],
        ),
        upload("zip-broken", "truncated", [("cut.zip", good[: len(good) // 2])]),
        upload("zip-broken", "empty-archive", [("empty.zip", _zip([]))]),
        upload("zip-broken", "only-text", [("notes.zip", _zip([("study/readme.txt", b"not an image\n" * 100)]))]),
    ]
    return cases


# --- NIfTI -----------------------------------------------------------------------------------------


def _nifti_bytes(image: nib.Nifti1Image) -> bytes:
    return bytes(image.to_bytes())


def nifti_cases(ct: Path) -> list[BadInput]:
    """NIfTI with broken headers, NaNs, 5-D, zero or absurd dimensions, cut files."""
    real = nib.load(ct)
    data = np.asarray(real.dataobj)[:32, :32, :8].astype(np.int16)  # a small real CT block
    affine = real.affine

    def image(array: np.ndarray, edit: Callable[[nib.Nifti1Header], None] | None = None) -> bytes:
        nifti = nib.Nifti1Image(array, affine)
        if edit is not None:
            edit(nifti.header)
        return _nifti_bytes(nifti)

    plain = image(data)

    def header(**fields: Any) -> bytes:
        hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(plain))
        for key, value in fields.items():
            hdr[key] = value
        buffer = io.BytesIO()
        hdr.write_to(buffer)
        return buffer.getvalue() + plain[len(buffer.getvalue()) :]

    nan = data.astype(np.float32)
    nan[4:10, 4:10, 2] = np.nan
    cases = [
        ("magic-wrong", header(magic=b"xyz")),
        ("vox-offset-past-end", header(vox_offset=1e9)),
        ("dims-zero", header(dim=[3, 0, 32, 8, 1, 1, 1, 1])),
        ("dims-negative", header(dim=[3, -32, 32, 8, 1, 1, 1, 1])),
        ("dims-memory-bomb", header(dim=[3, 30000, 30000, 30000, 1, 1, 1, 1])),
        ("dims-claim-2gb", header(dim=[3, 1000, 1000, 1000, 1, 1, 1, 1])),  # would fit in memory: refused unread
        ("datatype-unknown", header(datatype=255)),
        ("sform-singular", header(sform_code=1, qform_code=0, srow_x=[0, 0, 0, 0], srow_y=[0, 0, 0, 0])),
        ("nans", image(nan)),
        ("all-nan", image(np.full((16, 16, 4), np.nan, np.float32))),
        ("five-d", image(np.zeros((8, 8, 4, 2, 2), np.int16))),
        ("two-d", image(data[:, :, 0])),
        ("cut-in-data", plain[: len(plain) - 2000]),
    ]
    uploads = [upload("nifti-bad", name, [("image.nii", content)]) for name, content in cases]
    gz = ct.read_bytes()
    uploads.append(upload("nifti-bad", "gzip-cut", [("image.nii.gz", gz[: len(gz) // 3])]))
    claim = gzip.compress(header(dim=[3, 1000, 1000, 1000, 1, 1, 1, 1]))
    uploads.append(upload("nifti-bad", "gzip-claim-2gb", [("image.nii.gz", claim)]))
    return uploads


# --- datasets: label maps that do not fit -----------------------------------------------------------


def dataset_cases(series_id: str, labels: Path, big_labels: Path) -> list[BadInput]:
    """Label maps of the wrong shape or kind for a stored series, and malformed form fields."""
    real = nib.load(labels)
    array = np.asarray(real.dataobj)
    maps = {
        "label-of-another-ct": ("label.nii.gz", big_labels.read_bytes()),
        "label-cropped": ("label.nii", _nifti_bytes(nib.Nifti1Image(array[:, :, :20].copy(), real.affine))),
        "label-transposed": (
            "label.nii",
            _nifti_bytes(nib.Nifti1Image(np.ascontiguousarray(array.transpose(1, 0, 2)), real.affine)),
        ),
        "label-4d": ("label.nii", _nifti_bytes(nib.Nifti1Image(np.stack([array, array], axis=-1), real.affine))),
        "label-2d": ("label.nii", _nifti_bytes(nib.Nifti1Image(array[:, :, 0].copy(), real.affine))),
        "label-nan": (
            "label.nii",
            _nifti_bytes(nib.Nifti1Image(np.where(array > 0, np.nan, 0).astype(np.float32), real.affine)),
        ),
        "label-fractional": ("label.nii", _nifti_bytes(nib.Nifti1Image(array.astype(np.float32) * 0.37, real.affine))),
    }
    cases = []
    for name, (file_name, content) in maps.items():
        form = {
            "name": "bad",
            "labels": json.dumps({"5": "liver", "1": "spleen"}),
            "cases": json.dumps([{"image": {"series_id": series_id}, "label": file_name}]),
        }
        files = [("files", (file_name, content, OCTETS))]
        cases.append(BadInput("dataset-label-map", name, "POST", "/v1/datasets", {"data": form, "files": files}))
    label_file = [("files", ("label.nii.gz", labels.read_bytes(), OCTETS))]
    good_cases = json.dumps([{"image": {"series_id": series_id}, "label": "label.nii.gz"}])
    for name, form in {
        "labels-not-json": {"name": "bad", "labels": "{liver", "cases": good_cases},
        "labels-a-list": {"name": "bad", "labels": '["liver"]', "cases": good_cases},
        "labels-background": {"name": "bad", "labels": '{"0": "air"}', "cases": good_cases},
        "cases-not-json": {"name": "bad", "labels": '{"5": "liver"}', "cases": "[{"},
        "cases-unknown-series": {
            "name": "bad",
            "labels": '{"5": "liver"}',
            "cases": json.dumps([{"image": {"series_id": "no-such-series"}, "label": "label.nii.gz"}]),
        },
        "cases-label-missing": {
            "name": "bad",
            "labels": '{"5": "liver"}',
            "cases": json.dumps([{"image": {"series_id": series_id}, "label": "absent.nii.gz"}]),
        },
    }.items():
        cases.append(BadInput("dataset-form", name, "POST", "/v1/datasets", {"data": form, "files": label_file}))
    return cases


# --- HTTP: sizes, content types, JSON, unknown ids ----------------------------------------------------


def http_cases(limit: int, ct: Path) -> list[BadInput]:
    """Bodies over the size limit, wrong content types, malformed JSON and unknown ids."""
    image = ct.read_bytes()

    def chunks() -> Any:  # no Content-Length: the limit must hold on the stream
        boundary = b"--lrcboundary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="big.nii.gz"\r\n\r\n'
        sent = 0
        while sent <= limit:
            yield image
            sent += len(image)
        yield b"\r\n" + boundary + b"--\r\n"

    over = (limit // len(image) + 1) * [image]
    big = [("files", (f"part{i}.nii.gz", content, OCTETS)) for i, content in enumerate(over)]
    streamed = {"content": chunks(), "headers": {"Content-Type": "multipart/form-data; boundary=lrcboundary"}}
    cases = [
        BadInput("size", "multipart-over-limit", "POST", "/v1/studies", {"files": big}),
        BadInput("size", "chunked-over-limit", "POST", "/v1/studies", streamed),
        BadInput(
            "content-type",
            "raw-bytes-declared-multipart",
            "POST",
            "/v1/studies",
            {"content": image, "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        ),
        BadInput("content-type", "json-to-upload", "POST", "/v1/studies", {"json": {"files": ["a.dcm"]}}),
        BadInput(
            "content-type",
            "raw-dicom-to-upload",
            "POST",
            "/v1/studies",
            {"content": image, "headers": {"Content-Type": "application/dicom"}},
        ),
        BadInput(
            "content-type",
            "multipart-without-boundary",
            "POST",
            "/v1/studies",
            {"content": image, "headers": {"Content-Type": "multipart/form-data"}},
        ),
        BadInput(
            "content-type",
            "multipart-wrong-boundary",
            "POST",
            "/v1/studies",
            {
                "content": b"--other\r\n\r\n" + image[:1000],
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
        ),
        BadInput("content-type", "no-files-field", "POST", "/v1/studies", {"data": {"note": "no files"}, "files": []}),
        BadInput(
            "content-type",
            "form-to-segmentations",
            "POST",
            "/v1/segmentations",
            {"data": {"series_id": "x"}},
        ),
        BadInput(
            "content-type",
            "form-to-datasets-json",
            "POST",
            "/v1/datasets",
            {"json": {"name": "x", "labels": {"5": "liver"}}},
        ),
    ]
    raw_json = {"headers": {"Content-Type": "application/json"}}
    for path in ("/v1/segmentations", "/v1/finetunes"):
        kind = path.rsplit("/", 1)[1]
        for name, body in {
            "not-json": b"{series_id:",
            "empty-body": b"",
            "a-list": b"[]",
            "a-string": b'"text"',
            "deep-nesting": b"[" * 5000 + b"]" * 5000,
            "not-utf8": '{"series_id": "\u00e9"}'.encode("latin-1"),
        }.items():
            cases.append(BadInput(f"json-{kind}", name, "POST", path, {"content": body, **raw_json}))
    for name, body in {
        "missing-series": {},
        "series-a-number": {"series_id": 12},
        "unknown-series": {"series_id": "no-such-series"},
        "extra-field": {"series_id": "x", "priority": "urgent"},
        "unknown-model": {"series_id": "x", "model": "no-such-model"},
        "model-version-not-a-number": {"series_id": "x", "model": "ct-test:latest"},
    }.items():
        cases.append(BadInput("json-segmentations", name, "POST", "/v1/segmentations", {"json": body}))
    for name, body in {
        "missing-dataset": {"options": {}},
        "unknown-dataset": {"dataset_id": "no-such-dataset"},
        "steps-negative": {"dataset_id": "x", "options": {"steps": -1}},
        "steps-absurd": {"dataset_id": "x", "options": {"steps": 10**12}},
        "patch-not-multiple-of-16": {"dataset_id": "x", "options": {"patch": 50}},
        "canvas-memory-bomb": {"dataset_id": "x", "options": {"canvas": 1 << 20}},
        "name-traversal": {"dataset_id": "x", "name": "../../etc"},
        "features-wrong-length": {"dataset_id": "x", "options": {"features": [8, 8]}},
        "unknown-option": {"dataset_id": "x", "options": {"learning_rate_schedule": "magic"}},
        "unknown-base-model": {"dataset_id": "x", "base_model": "no-such-model:1"},
    }.items():
        cases.append(BadInput("json-finetunes", name, "POST", "/v1/finetunes", {"json": body}))
    for name, (method, path) in {
        "job": ("GET", "/v1/jobs/no-such-job"),
        "job-cancel": ("DELETE", "/v1/jobs/no-such-job"),
        "study": ("GET", "/v1/studies/no-such-study"),
        "study-delete": ("DELETE", "/v1/studies/no-such-study"),
        "segmentation": ("GET", "/v1/segmentations/no-such-segmentation"),
        "segmentation-result": ("GET", "/v1/segmentations/no-such-segmentation/result?format=nifti"),
        "result-format": ("GET", "/v1/segmentations/x/result?format=exe"),
        "dataset": ("GET", "/v1/datasets/no-such-dataset"),
        "model-version": ("GET", "/v1/models/no-such-model/versions/1"),
        "model-version-not-a-number": ("GET", "/v1/models/ct-test/versions/one"),
        "path-traversal-id": ("GET", "/v1/studies/..%2F..%2Fetc%2Fpasswd"),
    }.items():
        cases.append(BadInput("unknown-id", name, method, path))
    return cases
