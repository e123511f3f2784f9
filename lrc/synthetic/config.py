"""What varies between phantoms (:class:`PhantomConfig`) and one patient's draws (:class:`PhantomInfo`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lrc.synthetic.tissues import PHASES


@dataclass(frozen=True)
class PhantomConfig:
    """What varies between phantoms, and how much.

    Args:
        shape: voxels (x, y, z) at the nominal spacing.
        spacing: nominal voxel size in mm; ``spacing[2]`` is replaced per patient when
            ``slice_thickness`` is set.
        slice_thickness: range (mm) of the per-patient slice thickness, or ``None`` to keep
            ``shape`` and ``spacing`` exactly. The slice count follows so the length stays the same.
        anatomy_scale: range of the body size factor (organs and positions scale with it).
        organ_scale: range of each organ's own size factor on top of ``anatomy_scale``.
        fat_thickness: range (mm) of the subcutaneous fat layer.
        noise_std: range (HU) of the image noise at the nominal slice thickness.
        contrast_phases: phases drawn from (a subset of :data:`PHASES`).
        deformation: standard deviation (mm) of the elastic displacement at its control points.
        blur: in-plane partial-volume sigma (mm); along z it is ``0.4`` times the slice thickness.
    """

    shape: tuple[int, int, int] = (128, 128, 48)
    spacing: tuple[float, float, float] = (2.0, 2.0, 4.0)
    slice_thickness: tuple[float, float] | None = (2.5, 5.0)
    anatomy_scale: tuple[float, float] = (0.88, 1.06)
    organ_scale: tuple[float, float] = (0.85, 1.15)
    fat_thickness: tuple[float, float] = (5.0, 22.0)
    noise_std: tuple[float, float] = (6.0, 20.0)
    contrast_phases: tuple[str, ...] = PHASES
    deformation: float = 4.0
    blur: float = 1.0

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise ValueError(f"shape must be three sizes of at least 16 voxels, got {self.shape}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be three positive sizes in mm, got {self.spacing}")
        ranges = {"anatomy_scale": self.anatomy_scale, "organ_scale": self.organ_scale}
        ranges |= {"fat_thickness": self.fat_thickness, "noise_std": self.noise_std}
        if self.slice_thickness is not None:
            ranges["slice_thickness"] = self.slice_thickness
        for name, (low, high) in ranges.items():
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, got {(low, high)}")
        unknown = set(self.contrast_phases) - set(PHASES)
        if not self.contrast_phases or unknown:
            raise ValueError(f"contrast_phases must be a non-empty subset of {PHASES}, got {self.contrast_phases}")
        if self.deformation < 0 or self.blur < 0:
            raise ValueError(f"deformation and blur must be >= 0, got {self.deformation} and {self.blur}")

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PhantomConfig:
        """The inverse of :meth:`to_json`."""
        fields: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        return cls(**fields)


# The default of the generator's functions (a frozen instance, so sharing it is safe).
DEFAULT_CONFIG = PhantomConfig()


@dataclass(frozen=True)
class PhantomInfo:
    """The per-patient draws that describe a phantom without building it."""

    seed: int
    phase: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    noise_std: float
    hu: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return json.loads(json.dumps(asdict(self)))
