"""NIfTI-1/2 (``.nii``, ``.nii.gz``) in and out, via nibabel.

The NIfTI affine is already voxel-to-RAS, the convention of :class:`~lrc.io.volume.Volume`; the
sform is used when set, else the qform (nibabel's ``affine``). Written files carry the affine in
both sform and qform (code 1, scanner anatomical) and millimetre units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy

from lrc.io.atomic import atomic_path
from lrc.io.checks import ValueRange, check_grid, check_rescale, check_spacing, check_values, check_voxel_type
from lrc.io.errors import ImageIOError, UnsupportedInput
from lrc.io.volume import MAX_VOXELS, Volume, VolumeInfo

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Voxels of one slab of inspect_nifti: 32 MiB as float64, a few times that while a slab is scaled and checked.
SLAB_VOXELS = 1 << 22
DEFLATE_MAX_RATIO = 1032  # deflate inflates at most 258 bytes per 2 bits of code (RFC 1951)
# NIfTI-1 xyzt_units: lengths in metres or micrometres are converted; unknown (0) is taken as millimetres.
MILLIMETRES_PER_UNIT = {"meter": 1000.0, "micron": 1e-3}


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """True when the name ends in ``.nii`` or ``.nii.gz``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | os.PathLike[str], modality: str | None = None, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a 3D NIfTI image (a 4D file with one volume is accepted).

    Stored integers stay integers when the file applies no scaling (label maps keep their dtype).
    NIfTI does not record the modality: unless ``modality`` is given, an image whose values reach
    below -500 (air in Hounsfield units) is taken as CT, with a warning saying so; anything else is
    ``OT`` (windowed by percentiles, as MR is).

    The header's size is checked before any voxel is read: nibabel allocates what the header claims,
    so a 400-byte file claiming 2000^3 voxels would cost 16 GB. The claim must fit the file (its
    bytes after the header; gzip: deflate's largest ratio, ~1032:1) and ``max_voxels``.

    The header's datatype, scaling (``scl_slope``, ``scl_inter``), voxel sizes (``pixdim``) and shape
    are checked before any voxel is read too, and the grid and values after, by the checks both readers
    share (:mod:`lrc.io.checks`). Lengths the header gives in metres or micrometres (``xyzt_units``)
    are converted to millimetres, with a warning; nibabel's affine keeps the file's units.

    Raises:
        UnsupportedInput: not a readable NIfTI, a header claiming more voxels than the file or
            ``max_voxels`` holds, not 3D, or a singular affine.
        InvalidVoxels: not a real scalar datatype (RGB, complex), a scaling that is not finite, NaN,
            infinite or absurd values.
        GeometryError: voxel sizes, field of view, image plane or axes outside the shared bounds.
    """
    path = Path(path)
    image = _open(path, max_voxels)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types on cut files
        raise _unreadable(path, exc) from exc
    if data.ndim == 4:
        data = data[..., 0]
    check_values(data, path.name)
    affine, warnings = _geometry(path, image)
    low = float(data.min()) if data.size and not np.issubdtype(data.dtype, np.unsignedinteger) else 0.0
    modality, warnings = _modality(modality, low, warnings)
    return Volume(array=np.ascontiguousarray(data), affine=affine, modality=modality, warnings=warnings)


def inspect_nifti(
    path: str | os.PathLike[str],
    modality: str | None = None,
    max_voxels: int = MAX_VOXELS,
    each_slab: Callable[[np.ndarray], None] | None = None,
) -> VolumeInfo:
    """Check a NIfTI image as :func:`read_nifti` does, holding at most :data:`SLAB_VOXELS` of its voxels.

    The voxels are read once, in file order, slab by slab (a ``.nii.gz`` is inflated as a stream);
    each slab is scaled as nibabel scales the whole image and taken into the range the value checks
    and the modality need, then handed to ``each_slab`` when given (a caller's own check of the values).
    What is refused, and the message, are :func:`read_nifti`'s.

    Raises:
        ImageIOError: what :func:`read_nifti` raises for the file.
    """
    path = Path(path)
    image = _open(path, max_voxels)
    shape = _shape(path, image)
    values = ValueRange()
    unsigned = False
    try:
        with nib.openers.ImageOpener(str(path)) as stream:
            # One open stream read forward: nibabel's own proxy would reopen (and re-inflate) the file per slab.
            loaded = cast(ArrayProxy, image.dataobj)  # nibabel's proxy: where voxels start, their dtype and scaling
            proxy = ArrayProxy(stream, (loaded.shape, loaded.dtype, loaded.offset, loaded.slope, loaded.inter))
            for slab in slabs(shape, SLAB_VOXELS):
                part = proxy[(*slab, 0) if len(image.shape) == 4 else slab]
                values.add(part)
                if each_slab is not None:
                    each_slab(part)
                unsigned = np.issubdtype(part.dtype, np.unsignedinteger)
    except ImageIOError:
        raise
    except Exception as exc:  # nibabel and gzip raise many types on cut files
        raise _unreadable(path, exc) from exc
    values.check(path.name)
    affine, warnings = _geometry(path, image)
    modality, warnings = _modality(modality, 0.0 if unsigned else values.low, warnings)
    return VolumeInfo(shape=shape, affine=affine, modality=modality, warnings=warnings)


def nifti_grid(path: str | os.PathLike[str], max_voxels: int = MAX_VOXELS) -> tuple[tuple[int, int, int], np.ndarray]:
    """The shape and millimetre affine of a NIfTI image, from its header checked as :func:`read_nifti` checks it.

    No voxel is read.

    Raises:
        ImageIOError: what :func:`read_nifti` raises for the header or the grid.
    """
    path = Path(path)
    image = _open(path, max_voxels)
    affine, _ = _geometry(path, image)
    return _shape(path, image), affine


def slabs(shape: tuple[int, int, int], voxels: int) -> Iterator[tuple[slice, slice, slice]]:
    """Slicers covering an ``XYZ`` grid in file (Fortran) order, each of at most ``voxels`` voxels.

    Whole ``k`` planes when one fits, else rows of a plane, else parts of a row: every slab is one
    contiguous run of the file's voxels, and each starts where the one before ended.
    """
    x, y, z = shape
    if x * y <= voxels:
        step = voxels // (x * y)
        for k in range(0, z, step):
            yield slice(None), slice(None), slice(k, min(k + step, z))
    elif x <= voxels:
        step = voxels // x
        for k in range(z):
            for j in range(0, y, step):
                yield slice(None), slice(j, min(j + step, y)), slice(k, k + 1)
    else:
        for k in range(z):
            for j in range(y):
                for i in range(0, x, voxels):
                    yield slice(i, min(i + voxels, x)), slice(j, j + 1), slice(k, k + 1)


def _open(path: Path, max_voxels: int) -> nib.Nifti1Image | nib.Nifti2Image:
    """The image with its header checked (type, claimed size, datatype, scaling, voxel sizes, shape); no voxel read.

    Raises:
        ImageIOError: the header's checks (see :func:`read_nifti`).
    """
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
            raise UnsupportedInput(f"{path.name}: not a NIfTI image ({type(image).__name__})")
        _check_claimed_size(path, image, max_voxels)
        with nib.openers.ImageOpener(str(path)) as stream:  # as written: loading "fixes" a zero pixdim to 1 mm
            _check_header(path, type(image.header).from_fileobj(stream, check=False))
    except ImageIOError:
        raise
    except Exception as exc:  # nibabel raises many types on broken headers
        raise _unreadable(path, exc) from exc
    _shape(path, image)
    return image


def _shape(path: Path, image: nib.Nifti1Image | nib.Nifti2Image) -> tuple[int, int, int]:
    """The image's ``XYZ`` shape (a 4D shape of one volume counts as 3D).

    Raises:
        UnsupportedInput: not 3D, or empty.
    """
    shape = tuple(int(d) for d in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise UnsupportedInput(f"{path.name}: a 3D image is needed, this one has shape {shape}")
    if 0 in shape:
        raise UnsupportedInput(f"{path.name}: the image is empty (shape {shape})")
    x, y, z = shape
    return x, y, z


def _unreadable(path: Path, exc: Exception) -> UnsupportedInput:
    return UnsupportedInput(f"{path.name}: not a readable NIfTI file ({type(exc).__name__}: {exc})")


def _geometry(path: Path, image: nib.Nifti1Image | nib.Nifti2Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """The affine in millimetres (checked: not singular, a grid of the shared bounds) and the warnings it brings.

    Raises:
        UnsupportedInput: a singular or non-finite affine.
        GeometryError: the grid outside the shared bounds.
    """
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise UnsupportedInput(f"{path.name}: the header's affine is singular or not finite; no geometry")
    warnings: tuple[str, ...] = ()
    unit = image.header.get_xyzt_units()[0]
    if unit in MILLIMETRES_PER_UNIT:
        affine = np.diag([MILLIMETRES_PER_UNIT[unit]] * 3 + [1.0]) @ affine
        warnings = (f"the header gives lengths in {unit}s: converted to millimetres",)
    check_grid(_shape(path, image), affine, path.name)
    return affine, warnings


def _modality(modality: str | None, low: float, warnings: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The modality given, else CT when the lowest value ``low`` is below -500 (with a warning), else OT."""
    if modality is not None:
        return modality, warnings
    if low < -500:
        return "CT", (*warnings, "modality taken as CT: values reach below -500 (Hounsfield units); NIfTI does not say")
    return "OT", warnings


def _check_header(path: Path, header: nib.Nifti1Header | nib.Nifti2Header) -> None:
    """Datatype, scaling and voxel sizes as the header states them, before nibabel reads (or silently fixes) them.

    A ``scl_slope`` of 0 means "no scaling" (NIfTI-1), and so does NaN: nibabel writes NaN into every
    unscaled file (all the real files here have it) and nifti1_io reads non-finite values as 0. An
    infinite slope, which nibabel would silently ignore too, is refused, and so is a non-finite
    intercept beside a real slope. A ``pixdim`` of 0, which nibabel takes as 1 mm, is refused.
    """
    check_voxel_type(header.get_data_dtype(), path.name)
    slope, intercept = float(header["scl_slope"]), float(header["scl_inter"])
    if math.isinf(slope) or (math.isfinite(slope) and slope != 0):
        check_rescale(slope, intercept, f"{path.name}: scl_slope/scl_inter")
    millimetres = MILLIMETRES_PER_UNIT.get(header.get_xyzt_units()[0], 1.0)
    check_spacing([float(v) * millimetres for v in header["pixdim"][1:4]], f"{path.name}: pixdim (voxel size)")


def _check_claimed_size(path: Path, image: nib.Nifti1Image | nib.Nifti2Image, max_voxels: int) -> None:
    shape = [int(d) for d in image.header.get_data_shape()]
    dtype = image.header.get_data_dtype()
    voxels = math.prod(shape)
    stored = voxels * dtype.itemsize  # bytes in the file, decompressed
    size = path.stat().st_size
    gzipped = path.name.lower().endswith(".gz")
    holds = size * DEFLATE_MAX_RATIO if gzipped else size - int(getattr(image.dataobj, "offset", 0))
    if stored > holds:
        room = f"a {size}-byte gzip file inflates to {holds} bytes at most" if gzipped else f"the file holds {holds}"
        what = f"{stored} bytes of voxels ({'x'.join(map(str, shape))} {dtype})"
        raise UnsupportedInput(f"{path.name}: the header claims {what}; {room}: truncated or crafted")
    if voxels > max_voxels:
        raise UnsupportedInput(f"{path.name}: {voxels} voxels, over the reader's limit of {max_voxels}")


def write_nifti(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a volume as NIfTI-1, atomically (a reader never sees a half-written file).

    Raises:
        ValueError: the name does not end in ``.nii`` or ``.nii.gz``.
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise ValueError(f"{path.name}: a NIfTI output name ends in .nii or .nii.gz")
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.int64:
        array = array.astype(np.int32)
    image = nib.Nifti1Image(array, volume.affine)
    image.set_sform(volume.affine, code=1)
    image.set_qform(volume.affine, code=1)
    image.header.set_xyzt_units(xyz="mm")
    with atomic_path(path, ".nii.gz" if str(path).lower().endswith(".gz") else ".nii") as tmp:
        nib.save(image, tmp)
    return path
