"""From a tissue class map to a CT image: elastic deformation, intensities, texture, blur and noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lrc.synthetic.config import PhantomConfig, PhantomInfo
from lrc.synthetic.tissues import DEFAULT_TEXTURE, MATERIAL_OF, MATERIALS, TEXTURE


def deform(
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


def render(tissues: np.ndarray, info: PhantomInfo, config: PhantomConfig, rng: np.random.Generator) -> np.ndarray:
    """HU image of a class map: phase means, correlated texture, partial-volume blur, noise."""
    materials = MATERIAL_OF[tissues]
    mean = np.array([info.hu[m] for m in MATERIALS], dtype=np.float32)
    texture = np.array([TEXTURE.get(m, DEFAULT_TEXTURE) for m in MATERIALS], dtype=np.float32)
    sx, sy, sz = info.spacing
    grain = ndimage.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), (1.5, 1.5, 1.5 * sx / sz))
    grain *= 1 / max(float(grain.std()), 1e-6)
    image = mean[materials] + texture[materials] * grain
    sigma = (config.blur / sx, config.blur / sy, 0.4)  # along z: 0.4 slice thicknesses
    image = ndimage.gaussian_filter(image, sigma)
    noise = ndimage.gaussian_filter(rng.standard_normal(tissues.shape, dtype=np.float32), (0.7, 0.7, 0))
    image += noise * (info.noise_std / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)
