"""The grid a phantom is painted on, in body-centred millimetres, and the shapes painted on it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lrc.synthetic.tissues import Tissue


class Grid:
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


def rotation(rz: float, ry: float = 0.0, rx: float = 0.0) -> np.ndarray:
    """Rotation matrix (radians about z, then y, then x); its columns are the local axes."""
    cz, sz, cy, sy, cx, sx = np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry), np.cos(rx), np.sin(rx)
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rot_z @ rot_y @ rot_x


def blob(
    grid: Grid,
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
    rot = rotation(*angles)
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


def paint(
    tissues: np.ndarray, box: tuple[slice, slice, slice], mask: np.ndarray, tissue: Tissue, into: Iterable[Tissue]
) -> None:
    """Set ``mask`` voxels of ``box`` to ``tissue`` where they currently hold one of ``into``."""
    view = tissues[box]
    view[np.broadcast_to(mask, view.shape) & allowed(into)[view]] = tissue


def tube(
    grid: Grid, points: np.ndarray, radius: np.ndarray
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


def allowed(tissues: Iterable[Tissue]) -> np.ndarray:
    """A lookup table over class values: ``True`` for ``tissues``."""
    table = np.zeros(256, dtype=bool)
    table[list(tissues)] = True
    return table
