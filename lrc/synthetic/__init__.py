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

The package follows the data flow: :mod:`~lrc.synthetic.tissues` (tissue classes, labels, HU per
phase), :mod:`~lrc.synthetic.config` (what varies), :mod:`~lrc.synthetic.canvas` (the grid and the
shapes painted on it), :mod:`~lrc.synthetic.anatomy` and :mod:`~lrc.synthetic.bowel` (step 1),
:mod:`~lrc.synthetic.render` (steps 2 and 3), :mod:`~lrc.synthetic.phantom` (one seed, one
phantom) and :mod:`~lrc.synthetic.cohort` (files and manifest).
"""

from __future__ import annotations

from lrc.synthetic.cohort import make_cohort, write_manifest
from lrc.synthetic.config import PhantomConfig, PhantomInfo
from lrc.synthetic.phantom import describe_phantom, make_phantom
from lrc.synthetic.tissues import HU_RANGES, ORGANS, PHASES, Tissue, label_table

__all__ = [
    "HU_RANGES",
    "ORGANS",
    "PHASES",
    "PhantomConfig",
    "PhantomInfo",
    "Tissue",
    "describe_phantom",
    "label_table",
    "make_cohort",
    "make_phantom",
    "write_manifest",
]
