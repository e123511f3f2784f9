"""Building uploads from the real data for the service tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from pydicom.uid import generate_uid

from tests import dicom_factory


def zip_bytes(files: list[Path], folder: str = "study") -> bytes:
    """A zip archive of ``files`` under ``folder/``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, f"{folder}/{path.name}")
    return buffer.getvalue()


def ct_series(shared_data: Path) -> list[Path]:
    """The real 20-slice Siemens CT series (JPEG 2000, no UIDs)."""
    return sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))


def series_with_uids(shared_data: Path, folder: Path, count: int = 12) -> list[Path]:
    """A DICOM series with every UID its own, its study's too (tests sharing a service see only their
    own results in a study), built from a real CT slice (a SEG can reference it)."""
    return dicom_factory.write_series(
        shared_data,
        folder,
        dicom_factory.line(count, spacing=5.0),
        size=64,
        pixel_spacing=(3.0, 3.0),
        study_uid=generate_uid(),
    )


def multipart(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``files`` fields for httpx."""
    return [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]


def distinct_cts(shared_data: Path, folder: Path, count: int) -> list[Path]:
    """``count`` NIfTI copies of the real 112-slice CT, each shifted by its own number of HU: distinct
    studies (and super-pixels: no copy finds another's in the cache), each as long to prepare."""
    from dataclasses import replace

    from lrc.io import read_nifti, write_nifti

    ct = read_nifti(shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz", modality="CT")
    folder.mkdir(parents=True, exist_ok=True)
    return [write_nifti(replace(ct, array=ct.array + 7 * n), folder / f"ct{n}.nii.gz") for n in range(count)]
