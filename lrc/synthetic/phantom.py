"""One phantom from a seed: its draws (:func:`describe_phantom`) and its volumes (:func:`make_phantom`).

Each seed has three random streams, always drawn in the same order: ``[seed, 0]`` for the
per-patient draws, ``[seed, 1]`` for the anatomy, ``[seed, 2]`` for deformation and rendering.
"""

from __future__ import annotations

import numpy as np

from lrc.io.volume import Volume
from lrc.synthetic.anatomy import paint_anatomy
from lrc.synthetic.canvas import Grid
from lrc.synthetic.config import DEFAULT_CONFIG, PhantomConfig, PhantomInfo
from lrc.synthetic.render import deform, render
from lrc.synthetic.tissues import HU_RANGES, LABEL_OF, PHASES


def describe_phantom(seed: int, config: PhantomConfig = DEFAULT_CONFIG) -> PhantomInfo:
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


def make_phantom(seed: int, config: PhantomConfig = DEFAULT_CONFIG) -> tuple[Volume, Volume]:
    """Build phantom ``seed``: a CT image (``int16`` HU) and its label map (``uint8``, :data:`ORGANS`).

    The same seed and configuration always give identical arrays.
    """
    info = describe_phantom(seed, config)
    grid = Grid(info.shape, info.spacing)
    tissues = paint_anatomy(grid, np.random.default_rng([seed, 1]), config)
    rng = np.random.default_rng([seed, 2])
    tissues = deform(tissues, info.spacing, config.deformation, rng)
    labels = LABEL_OF[tissues]
    image = render(tissues, info, config, rng)
    affine = np.diag([*info.spacing, 1.0])
    affine[:3, 3] = -(np.asarray(info.shape) - 1) / 2 * np.asarray(info.spacing)
    return Volume(image, affine, modality="CT"), Volume(labels, affine.copy())
