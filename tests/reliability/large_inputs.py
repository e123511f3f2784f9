"""Large hostile uploads, written to disk as a stream (none is ever one array in memory): what the API's
memory bound is measured with (``test_api_memory.py``, ``bench/api_memory.py``).

Each image is valid, within the reader's voxel limit and accepted by the service; what makes it hostile
is how much it costs to hold: a few MB of gzip or JPEG 2000 that decode to gigabytes. :func:`post_dataset`
sends such an image with a label map as a dataset.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom

from lrc.io.checks import MAX_ABS_VALUE
from tests.reliability.corpus import _inflating_series

CHUNK = 1 << 24  # bytes written at a time


def nifti(path: Path, shape: tuple[int, int, int], dtype: str, fill: float = 0.0) -> Path:
    """A NIfTI-1 file of ``shape`` voxels of ``dtype``, each ``fill``, 1 mm, RAS; gzipped when the name ends in ``.gz``.

    Zeros of int16 at 1024 x 1024 x 1000 (2 GB of voxels) gzip to about 2 MB.
    """
    header = nib.Nifti1Header()
    header.set_data_dtype(np.dtype(dtype))
    header.set_data_shape(shape)
    header.set_sform(np.eye(4), code=1)
    header.set_qform(np.eye(4), code=1)
    header.set_xyzt_units(xyz="mm")
    header.set_data_offset(352)  # 348 bytes of header, 4 of "no extension"
    plane = np.full(shape[:2], fill, dtype=np.dtype(dtype)).tobytes(order="F")
    planes_per_chunk = max(1, CHUNK // len(plane))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as sink:  # type: ignore[operator]
        header.write_to(sink)
        sink.write(bytes(4))
        for k in range(0, shape[2], planes_per_chunk):
            sink.write(plane * min(planes_per_chunk, shape[2] - k))
    return path


def label_map(path: Path, shape: tuple[int, int, int]) -> Path:
    """A uint8 NIfTI label map of ``shape``, every voxel 1 (one structure): 1024 x 1024 x 1000 gzip to ~1 MB."""
    return nifti(path, shape, "uint8", fill=1)


def post_dataset(client: Any, image: Path, label: Path, timeout: float = 600) -> Any:
    """``POST /v1/datasets``: one case of ``image`` and ``label`` (value 1 named ``organ``), streamed from disk."""
    form = {
        "name": "large",
        "labels": json.dumps({"1": "organ"}),
        "cases": json.dumps([{"image": image.name, "label": label.name}]),
    }
    with contextlib.ExitStack() as stack:
        parts = [("files", (p.name, stack.enter_context(p.open("rb")))) for p in (image, label)]
        return client.post("/v1/datasets", data=form, files=parts, timeout=timeout)


def extreme_float64(path: Path, shape: tuple[int, int, int]) -> Path:
    """A float64 NIfTI whose values are all finite and within the bound (the largest the checks take)."""
    return nifti(path, shape, "float64", fill=MAX_ABS_VALUE)


def jpeg2000_series(template: Path, folder: Path, planes: int = 3, side: int = 16384) -> list[Path]:
    """``planes`` real slices whose JPEG 2000 data (2.6 kB each) decode to ``side`` x ``side`` zeros, 0.25 mm
    pixels (a field of view within the bounds): 3 planes of 16384 x 16384 are 805 M voxels, within the voxel
    limit, from 8 kB of files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in _inflating_series(template, planes, side):
        ds = pydicom.dcmread(io.BytesIO(content))
        ds.PixelSpacing = [0.25, 0.25]
        paths.append(folder / name)
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def native_series(template: Path, folder: Path, planes: int, side: int) -> list[Path]:
    """``planes`` uncompressed slices of ``side`` x ``side`` 16-bit pixels (a real slice's header, 1 mm apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(template)
    ds.Rows = ds.Columns = side
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.PixelData = np.zeros((side, side), np.uint16).tobytes()
    paths = []
    for k in range(planes):
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.2.{k + 1}"
        ds.InstanceNumber = k + 1
        paths.append(folder / f"slice{k:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths
