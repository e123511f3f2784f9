"""More of the hostile input corpus (see :mod:`tests.reliability.corpus`): images outside the readers'
shared bounds (``lrc/io/checks.py``), zip entries no file system or zipfile can extract, file names
no file system takes, and model versions no record can hold.

As in the corpus, every DICOM case is the factory's real CT slice edited with pydicom, every NIfTI
case the real TotalSegmentator CT rewritten with nibabel, every archive holds the real slice.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom

from tests.reliability.corpus import BadInput, _edited, _set, _slice, _zip, upload


def _crop(rows: int, columns: int) -> Callable[[pydicom.Dataset], None]:
    """The top-left ``rows x columns`` of the real pixels, with Rows and Columns to match."""

    def edit(ds: pydicom.Dataset) -> None:
        pixels = np.ascontiguousarray(ds.pixel_array[:rows, :columns])
        ds.Rows, ds.Columns = rows, columns
        ds.PixelData = pixels.tobytes()

    return edit


def dicom_cases(shared_data: Path, folder: Path) -> list[BadInput]:
    """Real slices whose geometry or rescale lies outside the bounds: every door must refuse them."""
    path = _slice(shared_data, folder / "bounds")
    geometry = {
        "pixel-spacing-1e-30": _set(PixelSpacing=["1e-30", "1e-30"]),
        "pixel-spacing-10-m": _set(PixelSpacing=["10000", "10000"]),
        "field-of-view-6-m": _set(PixelSpacing=["95", "95"]),  # 64 pixels of 95 mm
        "orientation-not-unit": _set(ImageOrientationPatient=["1000", "0", "0", "0", "0.001", "0"]),
        "orientation-not-orthogonal": _set(ImageOrientationPatient=["1", "0", "0", "0.5", "0.866025", "0"]),
        "image-1x1": _crop(1, 1),
        "image-1-row": _crop(1, 64),
        "frames-negative": _set(NumberOfFrames="-5"),
        "frames-zero": _set(NumberOfFrames="0"),
    }
    values = {
        "rescale-slope-zero": _set(RescaleSlope="0"),
        "rescale-slope-nan": _set(RescaleSlope="NaN"),
        "rescale-intercept-inf": _set(RescaleIntercept="inf"),
        "rescale-slope-1e30": _set(RescaleSlope="1e30"),
    }
    cases = [upload("dicom-bad-geometry", name, [("slice.dcm", _edited(path, e))]) for name, e in geometry.items()]
    return cases + [upload("dicom-bad-values", name, [("slice.dcm", _edited(path, e))]) for name, e in values.items()]


def _patched(archive: bytes, offset: int, value: int) -> bytes:
    """``archive`` with a 16-bit field of its first local and central headers set (flags: 6, method: 8)."""
    data = bytearray(archive)
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + offset : local + offset + 2] = value.to_bytes(2, "little")
    data[central + offset + 2 : central + offset + 4] = value.to_bytes(2, "little")
    return bytes(data)


def _corrupted(archive: bytes, name: str) -> bytes:
    """``archive`` with bytes of its first entry's compressed data flipped."""
    data = bytearray(archive)
    start = data.index(b"PK\x03\x04") + 30 + len(name)
    for k in range(start + 40, start + 400):
        data[k] ^= 0x55
    return bytes(data)


def archive_cases(shared_data: Path, folder: Path) -> list[BadInput]:
    """Names no file system takes, entries that cannot all exist, encryption, exotic or corrupt compression."""
    raw = _slice(shared_data, folder / "zipped-bounds").read_bytes()
    good = _zip([("study/slice.dcm", raw)])
    entry = "study/slice.dcm"
    archives = {
        ("zip-unsafe", "name-5000-characters"): _zip([("a" * 5000 + ".dcm", raw)]),
        ("zip-unsafe", "folder-name-300"): _zip([("b" * 300 + "/slice.dcm", raw)]),
        ("zip-unsafe", "file-and-folder"): _zip([("study", raw), (entry, raw)]),
        ("zip-unsafe", "same-path-twice"): _zip([(entry, raw), ("study/./slice.dcm", raw)]),
        ("zip-unsupported", "encrypted"): _patched(good, 6, 0x1),
        ("zip-unsupported", "deflate64"): _patched(good, 8, 9),
        ("zip-unsupported", "aes"): _patched(good, 8, 99),
        ("zip-broken", "corrupt-bzip2"): _corrupted(_zip([(entry, raw)], zipfile.ZIP_BZIP2), entry),
        ("zip-broken", "corrupt-lzma"): _corrupted(_zip([(entry, raw)], zipfile.ZIP_LZMA), entry),
    }
    return [upload(category, name, [("study.zip", data)]) for (category, name), data in archives.items()]


def nifti_cases(ct: Path) -> list[BadInput]:
    """The real CT as colour, complex or absurd voxels, broken scaling or voxel sizes, a sheared or tiny grid."""
    real = nib.load(ct)
    data = np.asarray(real.dataobj)[:32, :32, :8].astype(np.int16)  # a small real CT block
    affine = real.affine
    plain = nib.Nifti1Image(data, affine).to_bytes()

    def image(array: np.ndarray, grid: np.ndarray = affine) -> bytes:
        return bytes(nib.Nifti1Image(array, grid).to_bytes())

    def header(**fields: Any) -> bytes:  # written as they are: loading would fix some of them
        hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(plain), check=False)
        for key, value in fields.items():
            hdr[key] = value
        return hdr.binaryblock + plain[len(hdr.binaryblock) :]

    grey = np.clip(data + 1024, 0, 255).astype(np.uint8)
    rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = rgb["G"] = rgb["B"] = grey
    extreme = data.astype(np.float64)
    extreme[3, 3, 1], extreme[4, 4, 1] = 1e308, -1e308
    shear = np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    cases = {
        "datatype-rgb24": image(rgb),
        "datatype-complex64": image(data.astype(np.complex64)),
        "float64-1e308": image(extreme),
        "scl-slope-inf": header(scl_slope=np.inf),
        "scl-slope-1e30": header(scl_slope=1e30),  # finite: the scaled values are not
        "pixdim-zero": header(pixdim=[1, 0, 0, 0, 1, 1, 1, 1], sform_code=0, qform_code=1),  # nibabel: 1 mm
        "voxels-200mm": image(data, np.diag([200.0, 200.0, 200.0, 1.0])),
        "sform-sheared": image(data, affine @ shear),
        "image-1x1": image(np.ascontiguousarray(data[:1, :1, :])),
    }
    uploads = [upload("nifti-bad", name, [("image.nii", content)]) for name, content in cases.items()]
    # 200 accented letters: a name of 407 bytes, which no file system takes as it is
    uploads.append(upload("nifti-bad", "name-200-accented-letters", [("é" * 200 + ".nii", plain[:-2000])]))
    return uploads


def model_reference_cases(series_id: str, model: str) -> list[BadInput]:
    """Segmentations of a stored series asked of model versions no record can hold, and such a card."""
    cases = []
    for name, reference in {
        "version-past-64-bits": "ct-abdomen-starter:99999999999999999999",
        "version-past-32-bits": f"{model}:{2**31}",
        "version-5000-digits": f"{model}:{'9' * 5000}",
        "version-zero": f"{model}:0",
        "version-superscript-two": f"{model}:²",
        "version-negative": f"{model}:-1",
    }.items():
        body = {"series_id": series_id, "model": reference}
        cases.append(BadInput("model-reference", name, "POST", "/v1/segmentations", {"json": body}))
    path = f"/v1/models/{model}/versions/99999999999999999999"
    return [*cases, BadInput("model-reference", "card-version-past-64-bits", "GET", path)]
