"""NIfTI files for the reader tests: a block of the real CT, and headers edited past what nibabel would write."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

CT = Path("nifti") / "totalseg_ct_abdomen" / "example_ct_sm.nii.gz"


def real_ct_block(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 32 x 32 x 8 block of the real CT (int16 HU) and its affine (3 mm, RAS)."""
    image = nib.load(shared_data / CT)
    return np.asarray(image.dataobj)[40:72, 40:72, :8].astype(np.int16), image.affine


def edited_nifti(path: Path, array: np.ndarray, affine: np.ndarray, **fields: Any) -> Path:
    """``array`` saved by nibabel, then header ``fields`` written over it as they are (nibabel would fix some);
    gzipped when the name ends in ``.gz``."""
    raw = nib.Nifti1Image(array, affine).to_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=False)
    for key, value in fields.items():
        header[key] = value
    content = header.binaryblock + raw[len(header.binaryblock) :]
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path
