"""Resampling between grids: to a target spacing, and back onto the original grid.

Images are interpolated linearly; label maps either by nearest neighbour or, smoother and without
the staircase and lost thin structures of nearest neighbour, by resampling each label's one-hot
mask linearly and taking the arg-max ("one-hot"). Both run on the CPU with SciPy; the learning
core resamples on the GPU where it pays.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from lrc.io.volume import Volume

LabelMode = Literal["nearest", "onehot"]


def grid_for_spacing(volume: Volume, spacing: tuple[float, float, float]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a grid over the same extent as ``volume`` with voxels of ``spacing``.

    Axis directions are kept; the first voxel centre moves so that the new grid covers the same
    field of view (corner to corner) as the old one.
    """
    old = np.asarray(volume.spacing)
    new = np.asarray(spacing, dtype=np.float64)
    if new.shape != (3,) or np.any(new <= 0):
        raise ValueError(f"target spacing must be 3 positive numbers, got {spacing}")
    extent = old * np.asarray(volume.shape)
    shape = np.maximum(1, np.round(extent / new).astype(int))
    scale = extent / shape  # exact voxel size that tiles the extent
    affine = volume.affine.copy()
    affine[:3, :3] = volume.direction * scale
    # Corner of voxel 0 stays in place: centre moves by half a voxel of the difference.
    affine[:3, 3] = volume.affine[:3, :3] @ (0.5 * (scale / old) - 0.5) + volume.affine[:3, 3]
    return affine, (int(shape[0]), int(shape[1]), int(shape[2]))


def resample_to_spacing(
    volume: Volume, spacing: tuple[float, float, float], *, is_label: bool = False, label_mode: LabelMode = "onehot"
) -> Volume:
    """Resample a volume onto voxels of ``spacing`` mm over the same field of view."""
    affine, shape = grid_for_spacing(volume, spacing)
    return resample_to_grid(volume, affine, shape, is_label=is_label, label_mode=label_mode)


def resample_like(
    volume: Volume, reference: Volume, *, is_label: bool = False, label_mode: LabelMode = "onehot"
) -> Volume:
    """Resample a volume onto the grid of ``reference`` (e.g. a prediction back to its input)."""
    out = resample_to_grid(volume, reference.affine, reference.shape, is_label=is_label, label_mode=label_mode)
    out.source = reference.source if is_label else out.source
    return out


def resample_to_grid(
    volume: Volume,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    *,
    is_label: bool = False,
    label_mode: LabelMode = "onehot",
) -> Volume:
    """Resample a volume onto any grid given by ``affine`` (RAS) and ``shape``.

    Points outside the input take the input's minimum (images) or 0 (labels).
    """
    # Voxel index in the input for each output index: inv(A_in) @ A_out.
    mapping = np.linalg.inv(volume.affine) @ np.asarray(affine, dtype=np.float64)
    matrix, offset = mapping[:3, :3], mapping[:3, 3]
    if not is_label:
        source = volume.array.astype(np.float32, copy=False)
        out = ndimage.affine_transform(
            source, matrix, offset, output_shape=shape, order=1, cval=float(source.min()), mode="constant"
        )
        if np.issubdtype(volume.array.dtype, np.integer):
            info = np.iinfo(volume.array.dtype)
            out = np.clip(np.round(out), info.min, info.max).astype(volume.array.dtype)
        return Volume(out, affine, volume.modality, warnings=volume.warnings)
    if label_mode == "nearest":
        out = ndimage.affine_transform(
            volume.array, matrix, offset, output_shape=shape, order=0, cval=0, mode="constant"
        )
        return Volume(out, affine, volume.modality, warnings=volume.warnings)
    return Volume(_onehot(volume.array, matrix, offset, shape), affine, volume.modality, warnings=volume.warnings)


def _onehot(labels: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Label-wise linear resampling with arg-max, each label computed only around its bounding box."""
    best = np.zeros(shape, dtype=np.float32)
    total = np.zeros(shape, dtype=np.float32)
    out = np.zeros(shape, dtype=labels.dtype)
    inverse = np.linalg.inv(matrix)
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False)) if labels.size else []
    for index, box in enumerate(boxes):
        if box is None:
            continue
        value = index + 1
        # Input box grown by one voxel (interpolation support), mapped to output index space.
        low = np.array([max(b.start - 1, 0) for b in box])
        high = np.array([min(b.stop + 1, n) for b, n in zip(box, labels.shape, strict=True)])
        corners = np.array(
            [
                [c[0], c[1], c[2]]
                for c in np.stack(np.meshgrid(*zip(low, high - 1, strict=True), indexing="ij"), -1).reshape(-1, 3)
            ]
        )
        mapped = (corners - offset) @ inverse.T  # 8 x 3 output indices
        out_low = np.clip(np.floor(mapped.min(0)).astype(int) - 1, 0, shape)
        out_high = np.clip(np.ceil(mapped.max(0)).astype(int) + 2, 0, shape)
        if np.any(out_high <= out_low):
            continue
        crop = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        mask = (labels[crop] == value).astype(np.float32)
        block = tuple(slice(a, b) for a, b in zip(out_low, out_high, strict=True))
        weight = ndimage.affine_transform(
            mask,
            matrix,
            offset + matrix @ out_low - low,
            output_shape=tuple(out_high - out_low),
            order=1,
            cval=0.0,
            mode="constant",
        )
        win = weight > best[block]
        out[block][win] = value
        np.maximum(best[block], weight, out=best[block])
        total[block] += weight
    # Background competes too: its weight is what the labels leave.
    out[best < 1.0 - total] = 0
    return out
