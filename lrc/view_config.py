"""The augmentation ranges of pre-training's two views (torch-free: the configs that hold them are read by the API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# The LRC specification's intensity ranges (DESIGN.md): ``replace(ViewConfig(), **SPEC_INTENSITY)``.
SPEC_INTENSITY: dict[str, Any] = {"gamma": (0.7, 1.5), "scale": (0.9, 1.1), "shift": 0.1}


@dataclass(frozen=True)
class ViewConfig:
    """Augmentation ranges.

    Args:
        crop_scale: side of the random crop as a fraction of the slice side (min, max).
        rotate_degrees: rotations drawn uniformly in +-this.
        flip: random mirroring of the slice's columns: on the RAS model grid (rows left-right,
            columns posterior-anterior) that is front-to-back, in 2D and in 3D.
        independent_geometry: one geometric transform per view instead of one per pair.
        gamma: gamma range (applied to [0, 1] intensities).
        scale: multiplicative intensity range.
        shift: additive intensity range (+-).
            The default changes no intensity between the views: CT numbers are calibrated, and the
            specification's ranges (:data:`SPEC_INTENSITY`) taught the network to ignore the contrast
            that tells the aorta from soft tissue (docs/research/REPORT.md: aorta Dice -0.07 with them, level
            without them, on the synthetic cohort's full preset).
        blur_sigma: Gaussian blur sigma range in pixels (0 = none).
        noise_std: Gaussian noise standard deviation range.
    """

    crop_scale: tuple[float, float] = (0.6, 1.0)
    rotate_degrees: float = 15.0
    flip: bool = True
    independent_geometry: bool = False
    gamma: tuple[float, float] = (1.0, 1.0)
    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    noise_std: tuple[float, float] = (0.0, 0.05)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)
