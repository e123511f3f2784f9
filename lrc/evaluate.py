"""Segmentation metrics per label: Dice and the 95th-percentile Hausdorff distance (mm)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lrc.io.geometry import align_to
from lrc.io.volume import Volume


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(prediction, reference).sum()) / total


def hd95(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, float, float]) -> float | None:
    """Symmetric 95th-percentile surface distance in mm; ``None`` when a mask is empty."""
    if not prediction.any() or not reference.any():
        return None
    surface_p = prediction & ~ndimage.binary_erosion(prediction)
    surface_r = reference & ~ndimage.binary_erosion(reference)
    to_r = ndimage.distance_transform_edt(~surface_r, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)
    distances = np.concatenate([to_r[surface_p], to_p[surface_r]])
    return float(np.percentile(distances, 95))


def evaluate(
    prediction: Volume, reference: Volume, labels: dict[int, str], distances: bool = True
) -> dict[str, dict[str, float | None]]:
    """Dice and (unless ``distances`` is False) HD95 per label name, the reference label map aligned
    onto the prediction's grid."""
    reference = align_to(reference, prediction)
    result: dict[str, dict[str, float | None]] = {}
    for value, name in labels.items():
        p, r = prediction.array == value, reference.array == value
        result[name] = {"dice": dice(p, r), "hd95": hd95(p, r, prediction.spacing) if distances else None}
    return result


def mean_dice(metrics: dict[str, dict[str, float | None]]) -> float:
    """Mean Dice over labels."""
    values = [m["dice"] for m in metrics.values() if m["dice"] is not None]
    return float(np.mean(values)) if values else 0.0
