"""Tissue classes of a phantom, their materials, labels and Hounsfield units per contrast phase.

A phantom is painted as a map of :class:`Tissue` classes; each class takes the HU of a material
(:data:`HU_RANGES`, :data:`TEXTURE`) and a label value of :data:`ORGANS` (0: not labelled).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from lrc.io.labels import LabelTable

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
TISSUES: dict[Tissue, tuple[str, int]] = {
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
TEXTURE = {"faeces": 60.0, "cancellous_bone": 40.0, "fat": 10.0, "muscle": 8.0, "spleen": 7.0, "lung": 25.0}
DEFAULT_TEXTURE = 5.0
MATERIALS = tuple(HU_RANGES)

# Lookup tables indexed by tissue class (a class map indexes them directly).
LABEL_OF = np.zeros(256, dtype=np.uint8)
MATERIAL_OF = np.zeros(256, dtype=np.intp)
for _tissue, (_material, _label) in TISSUES.items():
    LABEL_OF[_tissue] = _label
    MATERIAL_OF[_tissue] = MATERIALS.index(_material)
# Where organs may be painted: the visceral fat of the cavity, or anywhere inside the body.
CAVITY = (T.VISCERAL_FAT,)
BODY = (T.SUBCUTANEOUS_FAT, T.MUSCLE, T.VISCERAL_FAT)


def label_table() -> LabelTable:
    """The label table of :data:`ORGANS` (SNOMED CT codes where the project's table knows the name)."""
    return LabelTable.from_names(ORGANS)
