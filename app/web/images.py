"""A stored series' image as one NIfTI-1 file, for the slice viewer.

The file holds the volume exactly as the workers read it (:func:`lrc.io.read_volume` on the stored
files), so it lies on the grid of the segmentation results and the page can overlay them voxel by
voxel. Written uncompressed: gzip would cost the server seconds per request for a large CT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.context import Context
from core.records.studies import get_series, series_entries
from lrc.io import Volume, read_volume, write_nifti

INT16 = np.iinfo(np.int16)


def series_nifti(ctx: Context, series_id: str, project: str, folder: Path) -> Path:
    """Write series ``series_id`` of ``project`` as ``folder/image.nii``: int16 when the values fit, else float32.

    Raises:
        NotFound: no such series in the project.
        ImageIOError: the stored files can no longer be read.
    """
    with ctx.db.session() as session:
        entries = series_entries(get_series(session, series_id, project))
    volume = read_volume(ctx.store.materialize(entries, folder / "series"))
    array = volume.array
    integral = np.issubdtype(array.dtype, np.integer) or bool(np.all(np.mod(array, 1) == 0))
    fits = array.size == 0 or (float(array.min()) >= INT16.min and float(array.max()) <= INT16.max)
    array = array.astype(np.int16 if integral and fits else np.float32)
    return write_nifti(Volume(array=array, affine=volume.affine, modality=volume.modality), folder / "image.nii")
