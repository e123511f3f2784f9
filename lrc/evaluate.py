"""Segmentation metrics per structure: Dice and the 95th-percentile Hausdorff distance (mm).

A model's output and a reference label map are compared structure by structure as a
:class:`~lrc.label_match.LabelMatch` pairs them (by name or SNOMED CT code, never by number).
A structure absent from both the prediction and the reference of a case has no Dice there
(``None``, left out of every mean, as nnU-Net leaves it out); one the prediction finds where the
reference has none scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lrc.io.geometry import align_to
from lrc.io.volume import Volume
from lrc.label_match import LabelMatch

Metrics = dict[str, dict[str, float | None]]  # structure name -> {"dice": ..., "hd95": ...}


def dice(prediction: np.ndarray, reference: np.ndarray) -> float | None:
    """Dice of two boolean masks; ``None`` when both are empty (nothing to score)."""
    total = int(prediction.sum()) + int(reference.sum())
    return None if total == 0 else 2.0 * float(np.logical_and(prediction, reference).sum()) / total


def hd95(prediction: np.ndarray, reference: np.ndarray, spacing: Sequence[float]) -> float | None:
    """Symmetric 95th-percentile distance between the masks' surfaces, in mm; ``None`` when a mask is empty.

    Surfaces are the mask voxels with a 6-connected (3D) neighbour outside the mask; the distances
    are those of each surface voxel of one mask to the nearest surface voxel of the other, both ways,
    pooled; the percentile interpolates linearly (NumPy's default).
    """
    if not prediction.any() or not reference.any():
        return None
    surface_p = prediction & ~ndimage.binary_erosion(prediction)
    surface_r = reference & ~ndimage.binary_erosion(reference)
    to_r = ndimage.distance_transform_edt(~surface_r, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)
    distances = np.concatenate([to_r[surface_p], to_p[surface_r]])
    return float(np.percentile(distances, 95))


def evaluate(prediction: Volume, reference: Volume, labels: LabelMatch, distances: bool = True) -> Metrics:
    """Dice and (unless ``distances`` is False) HD95 of each structure ``labels`` pairs, by its name.

    The reference label map is aligned onto the prediction's grid; the prediction's voxels of
    value ``pair.model`` are compared with the reference's of value ``pair.reference``.
    """
    reference = align_to(reference, prediction)
    result: Metrics = {}
    for pair in labels.pairs:
        p, r = prediction.array == pair.model, reference.array == pair.reference
        result[pair.name] = {"dice": dice(p, r), "hd95": hd95(p, r, prediction.spacing) if distances else None}
    return result


def summarize(per_case: Sequence[Metrics]) -> Metrics:
    """Per structure, the mean over cases of each metric (cases where it is ``None`` left out)."""
    names = list(dict.fromkeys(name for case in per_case for name in case))
    return {
        name: {metric: _mean([case[name][metric] for case in per_case if name in case]) for metric in ("dice", "hd95")}
        for name in names
    }


def mean_dice(metrics: Metrics) -> float | None:
    """Mean Dice over the structures that have one; ``None`` when none has."""
    return _mean([m["dice"] for m in metrics.values()])


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
