"""JSON-ready descriptions of volumes (``lrc info``, the service's series records)."""

from __future__ import annotations

from typing import Any

from lrc.io.geometry import axis_codes
from lrc.io.volume import Volume


def summarize(volume: Volume) -> dict[str, Any]:
    """Modality, shape (x, y, z), spacing (mm), origin, direction, RAS affine, UIDs and warnings."""
    source = volume.source
    return {
        "modality": volume.modality,
        "description": source.series_description if source else "",
        "shape": list(volume.shape),
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "direction": volume.direction.tolist(),
        "orientation": axis_codes(volume.affine),
        "affine": volume.affine.tolist(),
        "slice_count": volume.shape[2],
        "dtype": str(volume.array.dtype),
        "uids": {
            "study_instance_uid": source.study_instance_uid if source else None,
            "series_instance_uid": source.series_instance_uid if source else None,
            "frame_of_reference_uid": source.frame_of_reference_uid if source else None,
        },
        "warnings": list(volume.warnings),
    }
