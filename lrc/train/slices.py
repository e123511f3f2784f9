"""2D training data: volumes cut into axial slices on the model's in-plane grid.

Every volume is reoriented to RAS (so slices are axial and left is left in every case),
resampled in-plane to the model spacing (slice spacing kept), windowed to [0, 1] and centred on a
square canvas (padded with 0 or cropped). Slices with little body in them are left out of
pre-training. The arrays are built once and kept in memory as float16 (a 300-slice CT on a
256 canvas is 40 MB).

Building them takes seconds per volume (resampling, and super-pixels for pre-training: about 5 s
for a 112-slice CT on a 256 canvas). The builders call a :data:`Preparing` callback before each
volume and each of its slices, which may raise to stop them: a cancelled job stops there instead of
preparing every volume first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lrc.intensity import IntensityWindow
from lrc.io.geometry import align_to, reorient
from lrc.io.resample import resample_to_spacing
from lrc.io.volume import Volume
from lrc.superpixels import SuperpixelCache

Preparing = Callable[[float], None]
"""Called with the share of the volumes prepared so far (0 to 1); an exception it raises stops the builder."""


def prepared_share(preparing: Preparing | None, volume: int, volumes: int, done: float = 0.0) -> None:
    """Tell ``preparing`` that ``volume`` volumes of ``volumes`` are done, and ``done`` (0 to 1) of the next one."""
    if preparing is not None:
        preparing((volume + done) / max(1, volumes))


def volume_sha256(volume: Volume) -> str:
    """Content hash of a volume: voxels, dtype, shape and affine."""
    digest = hashlib.sha256()
    digest.update(str((volume.array.shape, volume.array.dtype.str)).encode())
    digest.update(np.ascontiguousarray(volume.array).tobytes())
    digest.update(np.round(volume.affine, 4).tobytes())
    return digest.hexdigest()


def to_model_grid(volume: Volume, spacing: float, slice_spacing: float | None = None, is_label: bool = False) -> Volume:
    """Reorient to RAS and resample to ``spacing`` mm in-plane and ``slice_spacing`` mm across
    slices (``None``: slice spacing unchanged, the 2D models' grid)."""
    canonical = reorient(volume, "RAS")
    target = (spacing, spacing, slice_spacing or canonical.spacing[2])
    if np.allclose(canonical.spacing, target, atol=1e-3):
        return canonical
    return resample_to_spacing(canonical, target, is_label=is_label)


def class_map(labels: np.ndarray, class_of: dict[int, int]) -> np.ndarray:
    """Label values to class indices (uint8); values not in ``class_of`` become background (0)."""
    lut = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.uint8)
    for value, cls in class_of.items():
        if value < lut.size:
            lut[value] = cls
    return lut[labels]


def center_on_canvas(array: np.ndarray, canvas: int) -> np.ndarray:
    """``XYZ`` array padded with 0 or cropped, centred, to ``canvas x canvas x Z``."""
    out = np.zeros((canvas, canvas, array.shape[2]), dtype=array.dtype)
    source, target = [], []
    for size in array.shape[:2]:
        if size >= canvas:
            start = (size - canvas) // 2
            source.append(slice(start, start + canvas))
            target.append(slice(0, canvas))
        else:
            start = (canvas - size) // 2
            source.append(slice(0, size))
            target.append(slice(start, start + size))
    out[target[0], target[1]] = array[source[0], source[1]]
    return out


@dataclass
class SliceSet:
    """Stacked slices: ``images`` ``N x C x C`` float16 in [0, 1], optional super-pixels and labels.

    Attributes:
        images: windowed slices.
        superpixels: ``N x C x C`` region ids (pre-training), or ``None``.
        labels: ``N x C x C`` class indices (fine-tuning), or ``None``.
        sources: ``(volume index, slice index)`` of each slice.
    """

    images: np.ndarray
    superpixels: np.ndarray | None
    labels: np.ndarray | None
    sources: list[tuple[int, int]]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def build_slices(
    volumes: list[Volume],
    window: IntensityWindow,
    spacing: float,
    canvas: int,
    labels: list[Volume] | None = None,
    class_of: dict[int, int] | None = None,
    cache: SuperpixelCache | None = None,
    min_body_fraction: float = 0.05,
    preparing: Preparing | None = None,
) -> SliceSet:
    """Cut volumes (and their label maps) into canvas slices.

    Args:
        volumes: images (any orientation and spacing).
        window: intensity window.
        spacing: in-plane spacing of the model grid, mm.
        canvas: side of the square canvas, pixels.
        labels: label maps on the images' grids (fine-tuning), or ``None``.
        class_of: label value -> class index; values not in it become background.
        cache: super-pixel cache (pre-training), or ``None`` for no super-pixels.
        min_body_fraction: slices with less of the canvas above background are skipped in
            pre-training (all slices are kept when labels are given).
        preparing: called before each volume and each of its slices, and at the end (:data:`Preparing`).
    """
    images, maps, classes, sources = [], [], [], []
    for index, volume in enumerate(volumes):
        prepared_share(preparing, index, len(volumes))
        grid = to_model_grid(volume, spacing)
        windowed = center_on_canvas(window.apply(grid.array), canvas)  # C x C x Z
        label_grid = None
        if labels is not None:
            label_volume = to_model_grid(align_to(labels[index], volume), spacing, is_label=True)
            label_grid = center_on_canvas(class_map(label_volume.array, class_of or {}), canvas)
        for k in range(windowed.shape[2]):
            prepared_share(preparing, index, len(volumes), k / windowed.shape[2])
            plane = windowed[:, :, k]
            if labels is None and (plane > 0.02).mean() < min_body_fraction:
                continue
            images.append(plane.astype(np.float16))
            if cache is not None:
                maps.append(cache.get(plane))
            if label_grid is not None:
                classes.append(label_grid[:, :, k])
            sources.append((index, k))
    prepared_share(preparing, len(volumes), len(volumes))
    if not images:
        raise ValueError("no usable slices: the volumes hold no body at this window")
    return SliceSet(
        images=np.stack(images),
        superpixels=np.stack(maps).astype(np.int32) if maps else None,
        labels=np.stack(classes) if classes else None,
        sources=sources,
    )
