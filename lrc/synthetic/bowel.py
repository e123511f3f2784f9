"""Colon and small-bowel loops, painted into the free visceral fat of a tissue class map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lrc.synthetic.canvas import Grid, allowed, paint, tube
from lrc.synthetic.tissues import CAVITY
from lrc.synthetic.tissues import Tissue as T


def paint_bowel(
    tissues: np.ndarray,
    grid: Grid,
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
    free = allowed(CAVITY)
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
        box, dist, index = tube(grid, points, radius)
        r = radius[index]
        paint(tissues, box, dist < r, T.BOWEL_WALL, CAVITY)
        view = tissues[box]
        gut = view == T.BOWEL_WALL
        lumen = ndimage.binary_erosion(gut) & (dist < r - 2.5)
        _, by, _ = grid.coords(box)
        level = (rng.uniform(-0.3, 1.2, size=len(points)) * radius)[index]  # air-fluid level per segment
        gas = lumen & (by - points[index, 1] > level)
        view[lumen] = T.BOWEL_FAECES if is_colon else T.BOWEL_FLUID
        view[gas] = T.BOWEL_GAS
