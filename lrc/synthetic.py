"""Synthetic CT-like abdominal phantoms with exact labels, for label-efficiency benchmarks.

:func:`make_phantom` builds one patient from a seed: an image in Hounsfield units (``int16``,
modality ``CT``) and a label map (``uint8``, :data:`ORGANS`) on the same grid, with a diagonal RAS
affine centred on the volume (``i`` towards patient left, ``j`` anterior, ``k`` superior, so the
liver, on the patient's right, has small ``i``). :func:`make_cohort` writes many as NIfTI and
:func:`write_manifest` lists them for :func:`lrc.manifest.load_manifest`.

How a phantom is made (all from the seed, see :class:`PhantomConfig` for the ranges):

1. A map of tissue classes is painted in body-centred millimetres: an elliptical body with
   subcutaneous fat, a muscle wall and visceral fat; vertebral bodies (cortical shell, marrow,
   discs) with posterior elements, spinal canal, paraspinal and psoas muscles; aorta (splitting
   into unlabelled iliac arteries low down) and an unlabelled IVC; kidneys with cortex, medulla and
   a renal sinus; liver with vessels and often a gallbladder; spleen; stomach (wall, fluid, gas with
   an air-fluid level); colon and small-bowel loops (wall, fluid, faeces, gas); lung bases at the
   top. Organs are ellipsoids with a low-frequency radial perturbation, sized, placed and rotated at
   random; later organs only fill what earlier ones left free, so they press against each other.
2. A smooth random elastic deformation (cubic-upsampled coarse random displacements, nearest
   neighbour sampling) is applied to the whole class map.
3. Labels come from the classes (posterior elements, discs, vessels other than the aorta, fat and
   muscle are not labelled). Intensities come from :data:`HU_RANGES` for the patient's contrast
   phase (one mean per tissue drawn from its range), plus correlated texture per tissue, a
   partial-volume blur (Gaussian, sigma in mm, so wider in mm along z for thicker slices) and
   correlated noise whose level grows for thinner slices.

Slice thickness varies per patient (``slice_thickness``): the number of slices changes so that the
covered length stays ``shape[2] * spacing[2]``; in-plane shape and spacing never change. With
``slice_thickness=None`` every phantom has exactly ``shape`` and ``spacing``.

Intensities overlap between tissues on purpose (non-contrast liver ~55, spleen ~45, kidney ~30,
aorta ~40, muscle ~50 HU), so a network must learn shape and context.

Speed (one CPU core, the project's 2-core machine, median of 20 seeds): 0.29 s CPU time for a
128x128x48 phantom (``slice_thickness=None``), 0.38 s with the default 2.5-5 mm slices (38 to 77
slices; the cost grows with the slice count).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lrc.io.labels import LabelTable
from lrc.io.nifti import write_nifti
from lrc.io.volume import Volume

PHASES = ("non-contrast", "arterial", "portal-venous")

# Label value -> name (the benchmark's label map).
ORGANS: dict[int, str] = {
    1: "liver",
    2: "spleen",
    3: "right_kidney",
    4: "left_kidney",
    5: "aorta",
    6: "spine",
    7: "stomach",
    8: "bowel",
}


class Tissue(IntEnum):
    """Tissue classes of the phantom before labels and intensities are assigned."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    MUSCLE = 2
    VISCERAL_FAT = 3
    LUNG = 4
    LIVER = 5
    LIVER_VESSEL = 6
    GALLBLADDER = 7
    SPLEEN = 8
    RIGHT_CORTEX = 9
    RIGHT_MEDULLA = 10
    LEFT_CORTEX = 11
    LEFT_MEDULLA = 12
    AORTA = 13
    ILIAC = 14
    IVC = 15
    VERTEBRAL_CORTEX = 16
    VERTEBRAL_MARROW = 17
    DISC = 18
    POSTERIOR_BONE = 19
    CANAL = 20
    STOMACH_WALL = 21
    STOMACH_FLUID = 22
    STOMACH_GAS = 23
    BOWEL_WALL = 24
    BOWEL_FLUID = 25
    BOWEL_FAECES = 26
    BOWEL_GAS = 27


T = Tissue
# Tissue -> (material whose HU it takes, label value or 0).
_TISSUES: dict[Tissue, tuple[str, int]] = {
    T.AIR: ("air", 0),
    T.SUBCUTANEOUS_FAT: ("fat", 0),
    T.MUSCLE: ("muscle", 0),
    T.VISCERAL_FAT: ("fat", 0),
    T.LUNG: ("lung", 0),
    T.LIVER: ("liver", 1),
    T.LIVER_VESSEL: ("liver_vessel", 1),
    T.GALLBLADDER: ("fluid", 0),
    T.SPLEEN: ("spleen", 2),
    T.RIGHT_CORTEX: ("kidney_cortex", 3),
    T.RIGHT_MEDULLA: ("kidney_medulla", 3),
    T.LEFT_CORTEX: ("kidney_cortex", 4),
    T.LEFT_MEDULLA: ("kidney_medulla", 4),
    T.AORTA: ("artery", 5),
    T.ILIAC: ("artery", 0),
    T.IVC: ("vein", 0),
    T.VERTEBRAL_CORTEX: ("cortical_bone", 6),
    T.VERTEBRAL_MARROW: ("cancellous_bone", 6),
    T.DISC: ("disc", 0),
    T.POSTERIOR_BONE: ("cortical_bone", 0),
    T.CANAL: ("fluid", 0),
    T.STOMACH_WALL: ("gi_wall", 7),
    T.STOMACH_FLUID: ("fluid", 7),
    T.STOMACH_GAS: ("gas", 7),
    T.BOWEL_WALL: ("gi_wall", 8),
    T.BOWEL_FLUID: ("fluid", 8),
    T.BOWEL_FAECES: ("faeces", 8),
    T.BOWEL_GAS: ("gas", 8),
}

# Mean HU range of each material per phase (non-contrast, arterial, portal-venous); a patient gets
# one value per material drawn uniformly from its range. Ranges overlap across organs on purpose.
HU_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "air": ((-1000, -1000), (-1000, -1000), (-1000, -1000)),
    "gas": ((-1000, -960), (-1000, -960), (-1000, -960)),
    "lung": ((-880, -820), (-880, -820), (-880, -820)),
    "fat": ((-115, -85), (-115, -85), (-115, -85)),
    "muscle": ((40, 58), (45, 62), (50, 68)),
    "liver": ((50, 65), (65, 85), (100, 125)),
    "liver_vessel": ((30, 42), (60, 85), (150, 190)),
    "spleen": ((40, 52), (95, 130), (105, 130)),
    "kidney_cortex": ((28, 38), (160, 210), (150, 190)),
    "kidney_medulla": ((25, 35), (60, 100), (130, 170)),
    "artery": ((35, 50), (250, 350), (140, 190)),
    "vein": ((35, 50), (70, 110), (130, 170)),
    "cortical_bone": ((450, 700), (450, 700), (450, 700)),
    "cancellous_bone": ((150, 280), (150, 280), (150, 280)),
    "disc": ((60, 100), (60, 100), (60, 100)),
    "fluid": ((0, 20), (0, 20), (0, 20)),
    "gi_wall": ((35, 50), (70, 110), (70, 100)),
    "faeces": ((-40, 20), (-40, 20), (-40, 20)),
}
# Standard deviation (HU) of each material's correlated texture.
_TEXTURE = {"faeces": 60.0, "cancellous_bone": 40.0, "fat": 10.0, "muscle": 8.0, "spleen": 7.0, "lung": 25.0}
_DEFAULT_TEXTURE = 5.0
_MATERIALS = tuple(HU_RANGES)


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


def label_table() -> LabelTable:
    """The label table of :data:`ORGANS` (SNOMED CT codes where the project's table knows the name)."""
    return LabelTable.from_names(ORGANS)


def describe_phantom(seed: int, config: PhantomConfig = PhantomConfig()) -> PhantomInfo:
    """Contrast phase, grid, noise level and mean HU per material of phantom ``seed``."""
    rng = np.random.default_rng([seed, 0])
    phase = str(config.contrast_phases[int(rng.integers(len(config.contrast_phases)))])
    column = PHASES.index(phase)
    hu = {name: float(rng.uniform(*ranges[column])) for name, ranges in HU_RANGES.items()}
    nx, ny, nz = config.shape
    sx, sy, sz = config.spacing
    noise = float(rng.uniform(*config.noise_std))
    if config.slice_thickness is not None:
        thickness = float(rng.uniform(*config.slice_thickness))
        nz = max(8, round(nz * sz / thickness))
        noise *= float(np.sqrt(sz / thickness))  # thinner slices are noisier
        sz = round(thickness, 2)
    return PhantomInfo(seed, phase, (nx, ny, nz), (float(sx), float(sy), float(sz)), noise, hu)


def make_phantom(seed: int, config: PhantomConfig = PhantomConfig()) -> tuple[Volume, Volume]:
    """Build phantom ``seed``: a CT image (``int16`` HU) and its label map (``uint8``, :data:`ORGANS`).

    The same seed and configuration always give identical arrays.
    """
    info = describe_phantom(seed, config)
    grid = _Grid(info.shape, info.spacing)
    tissues = _paint_anatomy(grid, np.random.default_rng([seed, 1]), config)
    rng = np.random.default_rng([seed, 2])
    tissues = _deform(tissues, info.spacing, config.deformation, rng)
    labels = _LABEL_OF[tissues]
    image = _render(tissues, info, config, rng)
    affine = np.diag([*info.spacing, 1.0])
    affine[:3, 3] = -(np.asarray(info.shape) - 1) / 2 * np.asarray(info.spacing)
    return Volume(image, affine, modality="CT"), Volume(labels, affine.copy())


def make_cohort(
    seeds: Iterable[int], out_dir: str | os.PathLike[str], config: PhantomConfig = PhantomConfig()
) -> list[dict[str, Any]]:
    """Write ``image_XXX.nii.gz`` and ``label_XXX.nii.gz`` per seed (XXX: the seed, 3 digits or more).

    Returns one entry per case: ``image`` and ``label`` (names relative to ``out_dir``), ``seed``,
    ``phase``, ``shape``, ``spacing`` and ``noise_std``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for seed in seeds:
        image, labels = make_phantom(seed, config)
        info = describe_phantom(seed, config)
        names = {"image": f"image_{seed:03d}.nii.gz", "label": f"label_{seed:03d}.nii.gz"}
        write_nifti(image, out / names["image"])
        write_nifti(labels, out / names["label"])
        cases.append(names | {k: v for k, v in info.to_json().items() if k != "hu"})
    return cases


def write_manifest(
    path: str | os.PathLike[str],
    train_cases: Sequence[Mapping[str, Any]],
    validation_cases: Sequence[Mapping[str, Any]] = (),
    test_cases: Sequence[Mapping[str, Any]] = (),
    config: PhantomConfig | None = None,
) -> Path:
    """Write a manifest for :func:`lrc.manifest.load_manifest` listing cases from :func:`make_cohort`.

    Case paths are kept as given: relative ones must be relative to the manifest's folder.
    The generator's configuration is recorded under ``"synthetic"`` when given.
    """
    path = Path(path)

    def entries(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{"image": str(c["image"]), "label": str(c["label"])} | _extras(c) for c in cases]

    data: dict[str, Any] = {"labels": {str(value): name for value, name in ORGANS.items()}}
    data |= {"train": entries(train_cases), "validation": entries(validation_cases), "test": entries(test_cases)}
    if config is not None:
        data["synthetic"] = {"generator": "lrc.synthetic", "config": config.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _extras(case: Mapping[str, Any]) -> dict[str, Any]:
    return {key: case[key] for key in ("seed", "phase") if key in case}


# --- anatomy ---------------------------------------------------------------------------------

_LABEL_OF = np.zeros(256, dtype=np.uint8)
_MATERIAL_OF = np.zeros(256, dtype=np.intp)
for _tissue, (_material, _label) in _TISSUES.items():
    _LABEL_OF[_tissue] = _label
    _MATERIAL_OF[_tissue] = _MATERIALS.index(_material)
_CAVITY = (T.VISCERAL_FAT,)
_BODY = (T.SUBCUTANEOUS_FAT, T.MUSCLE, T.VISCERAL_FAT)


class _Grid:
    """Voxel centres in body-centred mm (x to patient left, y anterior, z superior)."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
        self.shape = shape
        self.axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
        self.half_length = shape[2] * spacing[2] / 2

    def box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice]:
        """Index ranges of the voxels whose centres lie within [low, high] (may be empty)."""
        first = [int(np.searchsorted(a, lo)) for a, lo in zip(self.axes, low, strict=True)]
        last = [int(np.searchsorted(a, hi, side="right")) for a, hi in zip(self.axes, high, strict=True)]
        return (slice(first[0], last[0]), slice(first[1], last[1]), slice(first[2], last[2]))

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-grid coordinates of a box: shapes (n, 1, 1), (1, n, 1), (1, 1, n)."""
        x, y, z = (a[s] for a, s in zip(self.axes, box, strict=True))
        return x[:, None, None], y[None, :, None], z[None, None, :]


def _rotation(rz: float, ry: float = 0.0, rx: float = 0.0) -> np.ndarray:
    """Rotation matrix (radians about z, then y, then x); its columns are the local axes."""
    cz, sz, cy, sy, cx, sx = np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry), np.cos(rx), np.sin(rx)
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rot_z @ rot_y @ rot_x


def _blob(
    grid: _Grid,
    rng: np.random.Generator,
    centre: Sequence[float],
    radii: Sequence[float],
    angles: Sequence[float] = (0.0, 0.0, 0.0),
    roughness: float = 0.08,
) -> tuple[tuple[slice, slice, slice], list[np.ndarray], np.ndarray]:
    """A randomly perturbed ellipsoid: its box, local normalised coordinates and radius (< 1 inside).

    The radius is divided by ``1 + sum(a cos(w . u + phi))`` over the direction ``u``: a smooth
    low-frequency bump pattern of relative size ``roughness``.
    """
    rot = _rotation(*angles)
    c, r = np.asarray(centre, dtype=float), np.asarray(radii, dtype=float)
    half = np.abs(rot) @ r * (1 + 2 * roughness)
    box = grid.box(c - half, c + half)
    x, y, z = grid.coords(box)
    d = (x - c[0], y - c[1], z - c[2])
    p = [(rot[0, k] * d[0] + rot[1, k] * d[1] + rot[2, k] * d[2]) / r[k] for k in range(3)]
    rho = np.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2)
    u = [q / np.maximum(rho, 1e-6) for q in p]
    bumps = np.ones_like(rho)
    for _ in range(3):
        w = rng.normal(size=3) * 1.6
        bumps += roughness / 2 * np.cos(w[0] * u[0] + w[1] * u[1] + w[2] * u[2] + rng.uniform(0, 2 * np.pi))
    return box, p, rho / bumps


def _paint(
    tissues: np.ndarray, box: tuple[slice, slice, slice], mask: np.ndarray, tissue: Tissue, into: Iterable[Tissue]
) -> None:
    """Set ``mask`` voxels of ``box`` to ``tissue`` where they currently hold one of ``into``."""
    allowed = np.zeros(256, dtype=bool)
    allowed[list(into)] = True
    view = tissues[box]
    view[np.broadcast_to(mask, view.shape) & allowed[view]] = tissue


def _tube(
    grid: _Grid, points: np.ndarray, radius: np.ndarray
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray]:
    """Distance (mm) to a polyline and the index of the nearest segment, within its bounding box."""
    reach = float(radius.max()) + 1.0
    box = grid.box(points.min(axis=0) - reach, points.max(axis=0) + reach)
    shape = tuple(s.stop - s.start for s in box)
    dist = np.full(shape, np.inf, dtype=np.float32)
    index = np.zeros(shape, dtype=np.intp)
    for n in range(len(points) - 1):
        a, b = points[n], points[n + 1]
        sub = grid.box(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
        local = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(sub, box, strict=True))
        x, y, z = grid.coords(sub)
        v = b - a
        t = np.clip(((x - a[0]) * v[0] + (y - a[1]) * v[1] + (z - a[2]) * v[2]) / max(v @ v, 1e-9), 0, 1)
        d = np.sqrt((x - a[0] - t * v[0]) ** 2 + (y - a[1] - t * v[1]) ** 2 + (z - a[2] - t * v[2]) ** 2)
        closer = d < dist[local]
        dist[local][closer] = d[closer]
        index[local][closer] = n
    return box, dist, index


def _paint_anatomy(grid: _Grid, rng: np.random.Generator, config: PhantomConfig) -> np.ndarray:
    """The tissue class map (``uint8``, :class:`Tissue`) of one patient."""
    scale = rng.uniform(*config.anatomy_scale)

    def organ() -> float:
        return scale * rng.uniform(*config.organ_scale)

    length = grid.half_length  # organs are placed along z in fractions of the half length
    tissues = np.zeros(grid.shape, dtype=np.uint8)
    a, b = 118 * scale * rng.uniform(0.93, 1.05), 88 * scale * rng.uniform(0.9, 1.06)  # body semi-axes
    shift = rng.uniform(-8, 8, size=2)
    x, y, z = grid.coords((slice(None), slice(None), slice(None)))
    x, y = x - shift[0], y - shift[1]
    taper = 1 + 0.05 * np.sin(z / length * rng.uniform(1, 2.5) + rng.uniform(0, 6))  # (1, 1, nz)
    angle = np.arctan2(y / b, x / a)  # (nx, ny, 1)
    outline = 1 + sum(rng.uniform(0, 0.03) * np.cos(k * angle + rng.uniform(0, 6)) for k in (2, 3, 4))
    radial = np.sqrt((x / a) ** 2 + (y / np.where(y < 0, 0.93 * b, b)) ** 2) / (outline * taper)
    mean_radius = np.sqrt(a * b)
    fat = rng.uniform(*config.fat_thickness) * (1 + 0.4 * np.cos(angle - rng.uniform(0, 6))) / mean_radius
    muscle = rng.uniform(7, 13) / mean_radius
    tissues[radial < 1] = T.SUBCUTANEOUS_FAT
    tissues[radial < 1 - fat] = T.MUSCLE
    tissues[radial < 1 - fat - muscle] = T.VISCERAL_FAT
    # Cavity size used to place organs: the inner ellipse.
    ca, cb = a - 15 - 10 * scale, b - 15 - 10 * scale
    ox, oy = shift

    # Spine: vertebral bodies with cortical shell and discs; posterior elements, canal, muscles.
    vb = (ox, oy - 0.42 * cb)  # vertebral body centre (x, y)
    rx, ry = 19 * organ(), 15 * organ()
    period, phase = rng.uniform(26, 32) * scale, rng.uniform(0, 30)
    box = grid.box(np.array([vb[0] - 60, vb[1] - 75, -1e4]), np.array([vb[0] + 60, vb[1] + 25, 1e4]))
    bx, by, bz = grid.coords(box)
    by = by - 6 * np.sin(bz / length)  # a gentle lordosis
    body_r = np.sqrt(((bx - vb[0]) / rx) ** 2 + ((by - vb[1]) / ry) ** 2)
    in_disc = np.mod(bz + phase, period) < 0.22 * period
    shell = 1 - 2.5 / min(rx, ry)
    _paint(tissues, box, (body_r < 1) & in_disc, T.DISC, _BODY)
    _paint(tissues, box, (body_r < 1) & ~in_disc & (body_r >= shell), T.VERTEBRAL_CORTEX, _BODY)
    _paint(tissues, box, (body_r < shell) & ~in_disc, T.VERTEBRAL_MARROW, _BODY)
    canal_y = vb[1] - ry - 9
    canal = np.sqrt(((bx - vb[0]) / 8) ** 2 + ((by - canal_y) / 7.5) ** 2)
    spinous = (np.abs(bx - vb[0]) < 4) & (by < canal_y) & (by > canal_y - 32 * scale) & ~in_disc
    mid_vertebra = np.abs(np.mod(bz + phase, period) - 0.6 * period) < 0.22 * period
    transverse = (np.abs(by - canal_y - 2) < 4) & (np.abs(bx - vb[0]) < 36 * scale) & mid_vertebra
    paraspinal = np.sqrt(((np.abs(bx - vb[0]) - 22 * scale) / (20 * scale)) ** 2 + ((by - canal_y + 18) / 18) ** 2)
    _paint(tissues, box, paraspinal < 1, T.MUSCLE, (T.SUBCUTANEOUS_FAT, T.VISCERAL_FAT))
    _paint(tissues, box, (canal < 1.6) | spinous | transverse, T.POSTERIOR_BONE, _BODY)
    _paint(tissues, box, canal < 1, T.CANAL, (T.POSTERIOR_BONE,))

    # Aorta (splitting into iliac arteries low down) and IVC.
    ra = 10 * organ()
    ax, ay = vb[0] + rng.uniform(8, 16), vb[1] + ry + ra + rng.uniform(1, 5)
    split = -length * rng.uniform(0.55, 0.85)
    box = grid.box(np.array([ax - 60, ay - 40, -1e4]), np.array([ax + 60, ay + 40, 1e4]))
    bx, by, bz = grid.coords(box)
    wander = 3 * np.sin(bz / length * 2 + rng.uniform(0, 6))
    aorta = np.hypot(bx - ax - wander, by - ay) < ra * (1 + 0.1 * bz / length)
    _paint(tissues, box, aorta & (bz >= split), T.AORTA, _CAVITY)
    spread = np.maximum(split - bz, 0) * 0.5
    iliac = np.minimum(np.hypot(bx - ax + spread, by - ay), np.hypot(bx - ax - spread, by - ay)) < 0.7 * ra
    _paint(tissues, box, iliac & (bz < split), T.ILIAC, _CAVITY)

    # Kidneys: cortex, medulla (lobulated) and a renal sinus facing anteromedially.
    for side, cortex, medulla in ((-1, T.RIGHT_CORTEX, T.RIGHT_MEDULLA), (1, T.LEFT_CORTEX, T.LEFT_MEDULLA)):
        s = organ()
        centre = (
            vb[0] + side * rng.uniform(44, 54) * scale,
            vb[1] + rng.uniform(-2, 8),
            length * rng.uniform(-0.35, 0),
        )
        centre = (centre[0], centre[1], centre[2] + (12 * scale if side > 0 else 0))  # the left lies higher
        turn = -side * rng.uniform(0.4, 0.8)  # hilum turned anteromedially
        box, p, rho = _blob(grid, rng, centre, (27 * s, 20 * s, 52 * s), (turn, -side * 0.2, 0))
        hilum = -side * p[0]  # local x points medially for the right kidney, laterally for the left
        sinus = np.sqrt(((hilum - 0.65) / 0.5) ** 2 + (p[1] / 0.4) ** 2 + (p[2] / 0.5) ** 2) < 1
        lobes = 0.72 + 0.08 * np.cos(6 * np.arctan2(p[2], p[0]))
        _paint(tissues, box, (rho < 1) & ~sinus, cortex, _CAVITY)
        _paint(tissues, box, (rho < lobes) & ~sinus, medulla, (cortex,))

    # Psoas muscles, growing towards the pelvis, beside the vertebral bodies.
    box = grid.box(np.array([vb[0] - 70, vb[1] - 30, -1e4]), np.array([vb[0] + 70, vb[1] + 40, 0.3 * length]))
    bx, by, bz = grid.coords(box)
    grow = np.clip((0.3 * length - bz) / length, 0, 1)
    size = 4 + 16 * scale * grow
    psoas = np.hypot((np.abs(bx - vb[0]) - rx - size * 0.9) / size, (by - vb[1] - 2) / (size * 0.85)) < 1
    _paint(tissues, box, psoas, T.MUSCLE, _CAVITY)

    # Liver: right lobe plus left lobe crossing the midline anteriorly; vessels; gallbladder.
    s = organ()
    box, _, rho = _blob(
        grid, rng, (ox - 0.42 * ca, oy + 0.02 * cb, length * 0.55), (0.62 * ca * s, 0.95 * cb, 0.9 * length * s)
    )
    _paint(tissues, box, rho < 1, T.LIVER, _CAVITY)
    left = (ox + 0.12 * ca, oy + 0.45 * cb, length * rng.uniform(0.55, 0.75))
    box, _, rho = _blob(grid, rng, left, (0.5 * ca * s, 0.36 * cb, 0.35 * length * s), (rng.uniform(-0.3, 0.3), 0, 0))
    _paint(tissues, box, rho < 1, T.LIVER, _CAVITY)
    hilum = np.array([ox - 0.2 * ca, oy + 0.1 * cb, 0.4 * length])
    for _ in range(int(rng.integers(4, 8))):
        end = hilum + rng.normal(size=3) * np.array([0.35 * ca, 0.35 * cb, 0.3 * length])
        mid = (hilum + end) / 2 + rng.normal(size=3) * 6
        box, dist, _ = _tube(grid, np.stack([hilum, mid, end]), np.array([8.0]))
        _paint(tissues, box, dist < rng.uniform(2.5, 5.5), T.LIVER_VESSEL, (T.LIVER,))
    if rng.random() < 0.7:
        gb = (ox - 0.25 * ca, oy + 0.35 * cb, length * rng.uniform(0.0, 0.25))
        box, _, rho = _blob(grid, rng, gb, (12 * s, 11 * s, 24 * s), (rng.uniform(-0.5, 0.5), 0.3, 0))
        _paint(tissues, box, rho < 1, T.GALLBLADDER, (T.LIVER, T.LIVER_VESSEL, T.VISCERAL_FAT))

    # IVC, partly inside the liver.
    box = grid.box(np.array([vb[0] - 50, vb[1], -1e4]), np.array([vb[0], vb[1] + 60, 1e4]))
    bx, by, bz = grid.coords(box)
    ivc_x, ivc_y = vb[0] - rng.uniform(14, 22), vb[1] + ry + rng.uniform(8, 14)
    ivc = np.hypot((bx - ivc_x) / (11 * scale), (by - ivc_y) / (7 * scale)) < 1
    _paint(tissues, box, ivc & (bz >= split), T.IVC, (T.VISCERAL_FAT, T.LIVER, T.LIVER_VESSEL))

    # Spleen: posterior left, along the body wall, with a concave medial side.
    s = organ()
    centre = (ox + 0.66 * ca, oy - 0.3 * cb, length * rng.uniform(0.35, 0.6))
    box, p, rho = _blob(grid, rng, centre, (21 * s, 46 * s, 44 * s), (rng.uniform(-0.7, -0.3), 0, 0), 0.12)
    hollow = np.sqrt(((p[0] + 1.4) / 0.8) ** 2 + (p[1] / 0.9) ** 2 + (p[2] / 1.1) ** 2) < 1
    _paint(tissues, box, (rho < 1) & ~hollow, T.SPLEEN, _CAVITY)

    # Stomach: left upper, anterior to the spleen; wall, fluid and gas above an air-fluid level.
    s = organ()
    centre = (ox + 0.38 * ca, oy + 0.2 * cb, length * rng.uniform(0.4, 0.6))
    box, p, rho = _blob(
        grid, rng, centre, (32 * s, 27 * s, 42 * s), (rng.uniform(-0.6, 0.2), rng.uniform(-0.4, 0.4), 0)
    )
    filling = rng.uniform(0.55, 0.9)  # collapsed stomachs have thick walls and little content
    _paint(tissues, box, rho < 1, T.STOMACH_WALL, _CAVITY)
    view = tissues[box]
    inner = ndimage.binary_erosion(view == T.STOMACH_WALL, iterations=2) & (rho < filling)
    level = rng.uniform(-0.5, 0.9) * 27 * s + centre[1]
    _, by, _ = grid.coords(box)
    view[inner] = T.STOMACH_FLUID
    view[inner & np.broadcast_to(by > level, view.shape)] = T.STOMACH_GAS

    # Lung bases behind the liver dome and spleen at the top.
    for side in (-1, 1):
        centre = (ox + side * 0.5 * ca, oy - 0.35 * cb, length * rng.uniform(1.15, 1.4))
        box, _, rho = _blob(grid, rng, centre, (0.4 * ca, 0.5 * cb, 0.45 * length))
        _paint(tissues, box, rho < 1, T.LUNG, (T.VISCERAL_FAT, T.LIVER, T.LIVER_VESSEL, T.SPLEEN))

    _paint_bowel(tissues, grid, rng, (ox, oy, ca, cb), scale, length)
    return tissues


def _paint_bowel(
    tissues: np.ndarray,
    grid: _Grid,
    rng: np.random.Generator,
    frame: tuple[float, float, float, float],
    scale: float,
    length: float,
) -> None:
    """Colon (right, transverse, left) and small-bowel loops filling free visceral fat."""
    ox, oy, ca, cb = frame
    jitter = rng.normal(size=(6, 3)) * np.array([8, 8, 10])
    nodes = (
        np.array(
            [
                (-0.62 * ca, 0.0, -0.95 * length),
                (-0.66 * ca, 0.05 * cb, -0.3 * length),
                (-0.5 * ca, 0.35 * cb, 0.15 * length),
                (0.1 * ca, 0.6 * cb, -0.05 * length),
                (0.65 * ca, 0.1 * cb, 0.3 * length),
                (0.66 * ca, -0.05 * cb, -1.1 * length),
            ]
        )
        + jitter
        + np.array([ox, oy, 0])
    )
    t = np.linspace(0, len(nodes) - 1, 12 * len(nodes))
    colon = np.stack([np.interp(t, np.arange(len(nodes)), nodes[:, k]) for k in range(3)], axis=1)
    loops = [(colon, np.full(len(colon), rng.uniform(13, 19) * scale), True)]
    free = _allowed(_CAVITY)
    for _ in range(int(rng.integers(6, 10))):
        point = np.array(
            [ox + rng.uniform(-0.4, 0.4) * ca, oy + rng.uniform(0.0, 0.6) * cb, rng.uniform(-0.9, 0.1) * length]
        )
        heading = rng.normal(size=3)
        path = [point]
        for _ in range(int(rng.integers(40, 90))):
            heading = heading / np.linalg.norm(heading) + rng.normal(size=3) * 0.5
            heading[2] *= 0.6
            step = point + 5 * heading / np.linalg.norm(heading)
            # Turn back towards the loop region when leaving it or entering an organ.
            voxel = tuple(
                int(np.clip(round((v - ax[0]) / (ax[1] - ax[0])), 0, len(ax) - 1))
                for v, ax in zip(step, grid.axes, strict=True)
            )
            target = np.array([ox, oy + 0.25 * cb, -0.4 * length])
            outside = abs(step[0] - ox) > 0.6 * ca or not -0.3 * cb < step[1] - oy < 0.75 * cb
            if outside or not free[tissues[voxel]] or not -length < step[2] < 0.3 * length:
                heading = target - point + rng.normal(size=3) * 10
                continue
            point = step
            path.append(point)
        if len(path) > 3:
            loops.append((np.array(path), np.full(len(path), rng.uniform(7, 11) * scale), False))
    for points, radius, is_colon in loops:
        box, dist, index = _tube(grid, points, radius)
        r = radius[index]
        _paint(tissues, box, dist < r, T.BOWEL_WALL, _CAVITY)
        view = tissues[box]
        gut = view == T.BOWEL_WALL
        lumen = ndimage.binary_erosion(gut) & (dist < r - 2.5)
        _, by, _ = grid.coords(box)
        level = (rng.uniform(-0.3, 1.2, size=len(points)) * radius)[index]  # air-fluid level per segment
        gas = lumen & (by - points[index, 1] > level)
        view[lumen] = T.BOWEL_FAECES if is_colon else T.BOWEL_FLUID
        view[gas] = T.BOWEL_GAS


def _allowed(tissues: Iterable[Tissue]) -> np.ndarray:
    allowed = np.zeros(256, dtype=bool)
    allowed[list(tissues)] = True
    return allowed


def _deform(
    tissues: np.ndarray, spacing: tuple[float, float, float], sigma_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """Warp a class map with a smooth random displacement (control points ~40 mm apart, cubic)."""
    if sigma_mm == 0:
        return tissues
    shape = tissues.shape
    coarse = tuple(max(3, round(n * s / 40) + 1) for n, s in zip(shape, spacing, strict=True))
    # Cubic upsampling is separable: one small (n, c) matrix per axis instead of a 3D spline.
    upsample = [
        ndimage.zoom(np.eye(c), (n / c, 1), order=3, mode="nearest", grid_mode=True)[:n]
        for n, c in zip(shape, coarse, strict=True)
    ]
    coords = np.indices(shape, dtype=np.float32)
    for axis in range(3):
        field = rng.normal(size=coarse) * sigma_mm / spacing[axis]  # control points: cx x cy x cz
        field = np.einsum("ia,abc->ibc", upsample[0], field)  # nx x cy x cz
        field = np.einsum("jb,ibc->ijc", upsample[1], field)  # nx x ny x cz
        coords[axis] += np.einsum("kc,ijc->ijk", upsample[2], field)  # nx x ny x nz
    return ndimage.map_coordinates(tissues, coords, order=0, mode="nearest")


def _render(tissues: np.ndarray, info: PhantomInfo, config: PhantomConfig, rng: np.random.Generator) -> np.ndarray:
    """HU image of a class map: phase means, correlated texture, partial-volume blur, noise."""
    materials = _MATERIAL_OF[tissues]
    mean = np.array([info.hu[m] for m in _MATERIALS], dtype=np.float32)
    texture = np.array([_TEXTURE.get(m, _DEFAULT_TEXTURE) for m in _MATERIALS], dtype=np.float32)
    sx, sy, sz = info.spacing
    grain = ndimage.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), (1.5, 1.5, 1.5 * sx / sz))
    grain *= 1 / max(float(grain.std()), 1e-6)
    image = mean[materials] + texture[materials] * grain
    sigma = (config.blur / sx, config.blur / sy, 0.4)  # along z: 0.4 slice thicknesses
    image = ndimage.gaussian_filter(image, sigma)
    noise = ndimage.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), (0.7, 0.7, 0))
    image += noise * (info.noise_std / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)
