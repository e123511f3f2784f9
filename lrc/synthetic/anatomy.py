"""The tissue class map of one patient: body wall, spine, vessels, kidneys, liver, spleen, stomach, lungs.

The bowel is painted last, into what is left (:mod:`lrc.synthetic.bowel`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lrc.synthetic.bowel import paint_bowel
from lrc.synthetic.canvas import Grid, blob, paint, tube
from lrc.synthetic.config import PhantomConfig
from lrc.synthetic.tissues import BODY, CAVITY
from lrc.synthetic.tissues import Tissue as T


def paint_anatomy(grid: Grid, rng: np.random.Generator, config: PhantomConfig) -> np.ndarray:
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
    paint(tissues, box, (body_r < 1) & in_disc, T.DISC, BODY)
    paint(tissues, box, (body_r < 1) & ~in_disc & (body_r >= shell), T.VERTEBRAL_CORTEX, BODY)
    paint(tissues, box, (body_r < shell) & ~in_disc, T.VERTEBRAL_MARROW, BODY)
    canal_y = vb[1] - ry - 9
    canal = np.sqrt(((bx - vb[0]) / 8) ** 2 + ((by - canal_y) / 7.5) ** 2)
    spinous = (np.abs(bx - vb[0]) < 4) & (by < canal_y) & (by > canal_y - 32 * scale) & ~in_disc
    mid_vertebra = np.abs(np.mod(bz + phase, period) - 0.6 * period) < 0.22 * period
    transverse = (np.abs(by - canal_y - 2) < 4) & (np.abs(bx - vb[0]) < 36 * scale) & mid_vertebra
    paraspinal = np.sqrt(((np.abs(bx - vb[0]) - 22 * scale) / (20 * scale)) ** 2 + ((by - canal_y + 18) / 18) ** 2)
    paint(tissues, box, paraspinal < 1, T.MUSCLE, (T.SUBCUTANEOUS_FAT, T.VISCERAL_FAT))
    paint(tissues, box, (canal < 1.6) | spinous | transverse, T.POSTERIOR_BONE, BODY)
    paint(tissues, box, canal < 1, T.CANAL, (T.POSTERIOR_BONE,))

    # Aorta (splitting into iliac arteries low down) and IVC.
    ra = 10 * organ()
    ax, ay = vb[0] + rng.uniform(8, 16), vb[1] + ry + ra + rng.uniform(1, 5)
    split = -length * rng.uniform(0.55, 0.85)
    box = grid.box(np.array([ax - 60, ay - 40, -1e4]), np.array([ax + 60, ay + 40, 1e4]))
    bx, by, bz = grid.coords(box)
    wander = 3 * np.sin(bz / length * 2 + rng.uniform(0, 6))
    aorta = np.hypot(bx - ax - wander, by - ay) < ra * (1 + 0.1 * bz / length)
    paint(tissues, box, aorta & (bz >= split), T.AORTA, CAVITY)
    spread = np.maximum(split - bz, 0) * 0.5
    iliac = np.minimum(np.hypot(bx - ax + spread, by - ay), np.hypot(bx - ax - spread, by - ay)) < 0.7 * ra
    paint(tissues, box, iliac & (bz < split), T.ILIAC, CAVITY)

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
        box, p, rho = blob(grid, rng, centre, (27 * s, 20 * s, 52 * s), (turn, -side * 0.2, 0))
        hilum = -side * p[0]  # local x points medially for the right kidney, laterally for the left
        sinus = np.sqrt(((hilum - 0.65) / 0.5) ** 2 + (p[1] / 0.4) ** 2 + (p[2] / 0.5) ** 2) < 1
        lobes = 0.72 + 0.08 * np.cos(6 * np.arctan2(p[2], p[0]))
        paint(tissues, box, (rho < 1) & ~sinus, cortex, CAVITY)
        paint(tissues, box, (rho < lobes) & ~sinus, medulla, (cortex,))

    # Psoas muscles, growing towards the pelvis, beside the vertebral bodies.
    box = grid.box(np.array([vb[0] - 70, vb[1] - 30, -1e4]), np.array([vb[0] + 70, vb[1] + 40, 0.3 * length]))
    bx, by, bz = grid.coords(box)
    grow = np.clip((0.3 * length - bz) / length, 0, 1)
    size = 4 + 16 * scale * grow
    psoas = np.hypot((np.abs(bx - vb[0]) - rx - size * 0.9) / size, (by - vb[1] - 2) / (size * 0.85)) < 1
    paint(tissues, box, psoas, T.MUSCLE, CAVITY)

    # Liver: right lobe plus left lobe crossing the midline anteriorly; vessels; gallbladder.
    s = organ()
    box, _, rho = blob(
        grid, rng, (ox - 0.42 * ca, oy + 0.02 * cb, length * 0.55), (0.62 * ca * s, 0.95 * cb, 0.9 * length * s)
    )
    paint(tissues, box, rho < 1, T.LIVER, CAVITY)
    left = (ox + 0.12 * ca, oy + 0.45 * cb, length * rng.uniform(0.55, 0.75))
    box, _, rho = blob(grid, rng, left, (0.5 * ca * s, 0.36 * cb, 0.35 * length * s), (rng.uniform(-0.3, 0.3), 0, 0))
    paint(tissues, box, rho < 1, T.LIVER, CAVITY)
    hilum = np.array([ox - 0.2 * ca, oy + 0.1 * cb, 0.4 * length])
    for _ in range(int(rng.integers(4, 8))):
        end = hilum + rng.normal(size=3) * np.array([0.35 * ca, 0.35 * cb, 0.3 * length])
        mid = (hilum + end) / 2 + rng.normal(size=3) * 6
        box, dist, _ = tube(grid, np.stack([hilum, mid, end]), np.array([8.0]))
        paint(tissues, box, dist < rng.uniform(2.5, 5.5), T.LIVER_VESSEL, (T.LIVER,))
    if rng.random() < 0.7:
        gb = (ox - 0.25 * ca, oy + 0.35 * cb, length * rng.uniform(0.0, 0.25))
        box, _, rho = blob(grid, rng, gb, (12 * s, 11 * s, 24 * s), (rng.uniform(-0.5, 0.5), 0.3, 0))
        paint(tissues, box, rho < 1, T.GALLBLADDER, (T.LIVER, T.LIVER_VESSEL, T.VISCERAL_FAT))

    # IVC, partly inside the liver.
    box = grid.box(np.array([vb[0] - 50, vb[1], -1e4]), np.array([vb[0], vb[1] + 60, 1e4]))
    bx, by, bz = grid.coords(box)
    ivc_x, ivc_y = vb[0] - rng.uniform(14, 22), vb[1] + ry + rng.uniform(8, 14)
    ivc = np.hypot((bx - ivc_x) / (11 * scale), (by - ivc_y) / (7 * scale)) < 1
    paint(tissues, box, ivc & (bz >= split), T.IVC, (T.VISCERAL_FAT, T.LIVER, T.LIVER_VESSEL))

    # Spleen: posterior left, along the body wall, with a concave medial side.
    s = organ()
    centre = (ox + 0.66 * ca, oy - 0.3 * cb, length * rng.uniform(0.35, 0.6))
    box, p, rho = blob(grid, rng, centre, (21 * s, 46 * s, 44 * s), (rng.uniform(-0.7, -0.3), 0, 0), 0.12)
    hollow = np.sqrt(((p[0] + 1.4) / 0.8) ** 2 + (p[1] / 0.9) ** 2 + (p[2] / 1.1) ** 2) < 1
    paint(tissues, box, (rho < 1) & ~hollow, T.SPLEEN, CAVITY)

    # Stomach: left upper, anterior to the spleen; wall, fluid and gas above an air-fluid level.
    s = organ()
    centre = (ox + 0.38 * ca, oy + 0.2 * cb, length * rng.uniform(0.4, 0.6))
    box, p, rho = blob(grid, rng, centre, (32 * s, 27 * s, 42 * s), (rng.uniform(-0.6, 0.2), rng.uniform(-0.4, 0.4), 0))
    filling = rng.uniform(0.55, 0.9)  # collapsed stomachs have thick walls and little content
    paint(tissues, box, rho < 1, T.STOMACH_WALL, CAVITY)
    view = tissues[box]
    inner = ndimage.binary_erosion(view == T.STOMACH_WALL, iterations=2) & (rho < filling)
    level = rng.uniform(-0.5, 0.9) * 27 * s + centre[1]
    _, by, _ = grid.coords(box)
    view[inner] = T.STOMACH_FLUID
    view[inner & np.broadcast_to(by > level, view.shape)] = T.STOMACH_GAS

    # Lung bases behind the liver dome and spleen at the top.
    for side in (-1, 1):
        centre = (ox + side * 0.5 * ca, oy - 0.35 * cb, length * rng.uniform(1.15, 1.4))
        box, _, rho = blob(grid, rng, centre, (0.4 * ca, 0.5 * cb, 0.45 * length))
        paint(tissues, box, rho < 1, T.LUNG, (T.VISCERAL_FAT, T.LIVER, T.LIVER_VESSEL, T.SPLEEN))

    paint_bowel(tissues, grid, rng, (ox, oy, ca, cb), scale, length)
    return tissues
