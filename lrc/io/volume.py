"""The one image type of the project: :class:`Volume`.

Conventions (the I/O contract every layer relies on):

* ``array`` is indexed ``[i, j, k]`` (``XYZ``): ``i`` runs along a DICOM row (column index),
  ``j`` down the rows (row index), ``k`` over slices in ascending order along the slice normal.
  This is nibabel's and MONAI's order, so ``shape`` reads (x, y, z).
* ``affine`` maps voxel indices ``(i, j, k, 1)`` to world millimetres in **RAS+**, as NIfTI does.
  DICOM patient coordinates are LPS+; :data:`LPS_TO_RAS` converts (x and y change sign).
* CT arrays hold Hounsfield units (rescale slope/intercept applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# The largest image the readers decode, in voxels (4 GB as float32; 13x a 512x512x1000 CT). Headers
# can claim any size in a few bytes (compressed DICOM, NIfTI): the claim is checked before allocating.
MAX_VOXELS = 1 << 30

# Patient and study attributes a derived object (DICOM SEG, RTSTRUCT) copies from its source.
COPIED_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along i, j, k of a 4x4 voxel-to-world matrix."""
    sx, sy, sz = np.linalg.norm(affine[:3, :3], axis=0)
    return (float(sx), float(sy), float(sz))


@dataclass(frozen=True)
class DicomSource:
    """Where a volume came from in DICOM terms: what a DICOM SEG or RTSTRUCT must reference.

    ``sop_instance_uids``, ``files`` and ``frames`` are in slice order (``k``). ``frames`` is the
    1-based frame number inside a multi-frame file, or ``None`` for single-frame files.
    UIDs may be empty strings when the files were stripped of them (a note says so). ``files``
    are valid while the input exists (zip archives unpack to a temporary folder unless the caller
    gives one); ``headers`` holds the source headers (no pixel data) in slice order, one per file.
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]
    files: tuple[Path, ...]
    frames: tuple[int | None, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    series_description: str = ""
    series_number: int | None = None
    headers: tuple[Dataset, ...] = field(default=(), compare=False, repr=False)

    @property
    def has_uids(self) -> bool:
        """True when study, series, frame of reference and every instance UID are present."""
        return all(
            (self.study_instance_uid, self.series_instance_uid, self.frame_of_reference_uid, self.sop_class_uid)
        ) and all(self.sop_instance_uids)


@dataclass(eq=False)
class Volume:
    """A 3D image (or label map) on a grid in world space.

    Args:
        array: voxels, ``XYZ`` order (see the module docstring).
        affine: 4x4 voxel-to-world matrix, RAS+ millimetres.
        modality: DICOM modality (``CT``, ``MR``, ...) or ``OT`` when unknown.
        source: DICOM identifiers when read from DICOM, else ``None``.
        warnings: things a user should know about how the volume was assembled.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    source: DicomSource | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3D (XYZ), got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel counts (x, y, z)."""
        x, y, z = self.array.shape
        return (x, y, z)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return spacing_of(self.affine)

    @property
    def origin(self) -> tuple[float, float, float]:
        """World (RAS) position of voxel (0, 0, 0) in mm."""
        x, y, z = self.affine[:3, 3]
        return (float(x), float(y), float(z))

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of i, j, k."""
        return self.affine[:3, :3] / np.asarray(self.spacing)

    @property
    def lps_affine(self) -> np.ndarray:
        """The affine in DICOM's LPS+ patient coordinates."""
        return LPS_TO_RAS @ self.affine

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A volume on the same grid with other voxels (e.g. a label map for this image)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return replace(self, array=array, **changes)


@dataclass(frozen=True)
class VolumeInfo:
    """What a reader knows of a :class:`Volume` after checking it without holding its voxels.

    The inspecting readers (:func:`lrc.io.nifti.inspect_nifti`, :func:`lrc.io.dicom_read.inspect_dicom`)
    run every check the full readers run and give the volume's grid, modality, source and warnings,
    exactly as reading it would; its voxels were streamed (NIfTI) or decoded one plane at a time
    (compressed DICOM), never held together.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    modality: str = "OT"
    source: DicomSource | None = None
    warnings: tuple[str, ...] = ()

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return spacing_of(self.affine)
