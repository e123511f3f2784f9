"""Felzenszwalb super-pixels of 2D slices, cached on disk.

The LRC local loss contrasts regions, and the regions are Felzenszwalb & Huttenlocher's
graph-based segmentation (IJCV 2004) of each windowed slice (``skimage.segmentation.felzenszwalb``).
Parameters are given for a 256x256 slice and adapted to the slice size so that the same anatomy
at another resolution is cut into about as many regions: ``sigma`` scales with the side,
``min_size`` with the area, ``scale`` stays. (Measured on a real CT slice resampled to 128, 256 and
512 pixels: 86 / 87 / 77 regions this way; scaling ``scale`` with the area too, as DESIGN.md first
proposed, gave 207 / 87 / 19, because upsampled slices have weaker edges.) Regions that are mostly background (air) are
dropped (label 0). Super-pixels depend only on the slice and the parameters, so they are computed
once and cached under a key of both; pre-training never recomputes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lrc.io.atomic import atomic_path

REFERENCE_AREA = 256 * 256


@dataclass(frozen=True)
class SuperpixelParams:
    """Felzenszwalb parameters at a 256x256 slice, and the background rule.

    Args:
        scale: larger gives larger regions.
        sigma: Gaussian smoothing before segmenting, in pixels (scaled with the slice side).
        min_size: smallest region in pixels (scaled with the slice area).
        background_level: windowed intensity below which a pixel counts as background.
        background_fraction: regions with more background pixels than this are dropped.
    """

    scale: float = 100.0
    sigma: float = 0.8
    min_size: int = 50
    background_level: float = 0.02
    background_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.scale <= 0 or self.sigma < 0 or self.min_size < 1:
            got = f"{self.scale}, {self.sigma} and {self.min_size}"
            raise ValueError(f"need scale > 0, sigma >= 0 and min_size >= 1, got {got}")

    def key(self) -> str:
        """Stable text of the parameters, part of the cache key."""
        return json.dumps(asdict(self), sort_keys=True)


def superpixels(image: np.ndarray, params: SuperpixelParams | None = None) -> np.ndarray:
    """Super-pixels of one windowed slice.

    Args:
        image: ``HW`` slice with values in [0, 1].
        params: segmentation parameters.

    Returns:
        ``HW`` int32 map: 0 for dropped (background) regions, regions numbered 1..R.

    Raises:
        ValueError: ``image`` is not 2D.
    """
    from skimage.segmentation import felzenszwalb  # here: the configs that hold the parameters load without it

    params = params or SuperpixelParams()
    if image.ndim != 2:
        raise ValueError(f"superpixels needs a 2D slice, got shape {image.shape}")
    factor = image.size / REFERENCE_AREA
    segments = felzenszwalb(
        image.astype(np.float64, copy=False),
        scale=params.scale,
        sigma=params.sigma * factor**0.5,
        min_size=max(1, round(params.min_size * factor)),
    )
    count = int(segments.max()) + 1
    sizes = np.bincount(segments.ravel(), minlength=count)
    background = np.bincount(segments.ravel(), weights=(image < params.background_level).ravel(), minlength=count)
    keep = background <= params.background_fraction * sizes
    numbering = np.zeros(count, dtype=np.int32)
    numbering[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return numbering[segments]


class SuperpixelCache:
    """Super-pixel maps on disk, keyed by slice content and parameters.

    Args:
        directory: cache folder (created when needed); safe to share between processes, since
            entries are written atomically and never change.
        params: segmentation parameters.
    """

    def __init__(self, directory: str | os.PathLike[str], params: SuperpixelParams | None = None) -> None:
        self.directory = Path(directory)
        self.params = params or SuperpixelParams()
        self.hits = 0
        self.misses = 0

    def _path(self, image: np.ndarray) -> Path:
        digest = hashlib.sha256()
        digest.update(self.params.key().encode())
        digest.update(str((image.shape, image.dtype.str)).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        name = digest.hexdigest()
        return self.directory / name[:2] / f"{name}.npy"

    def get(self, image: np.ndarray) -> np.ndarray:
        """The super-pixels of ``image``, from the cache or computed and stored."""
        path = self._path(image)
        if path.is_file():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        result = superpixels(image, self.params)
        stored = result.astype(np.uint16) if result.max() < 2**16 else result
        with atomic_path(path, ".npy") as tmp:
            np.save(tmp, stored)
        return stored
