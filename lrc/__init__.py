"""LRC: label-efficient medical image segmentation.

``lrc.io`` reads and writes medical images (DICOM, DICOM SEG, RTSTRUCT, NIfTI) into one
:class:`lrc.io.Volume` type. The learning core, service and PACS integration build on it.
"""

__version__ = "0.1.0"
