"""Typed errors of the image I/O layer.

Every error carries a message a user can act on (what was wrong, where, what to do) and never
patient identifiers. The service maps these to ``application/problem+json`` responses.
"""

from __future__ import annotations


class ImageIOError(ValueError):
    """Base class: the input could not be turned into a volume."""


class UnsupportedInput(ImageIOError):
    """The input is neither DICOM nor NIfTI, or holds no image at all."""


class InvalidDicom(ImageIOError):
    """A file claims to be DICOM but cannot be parsed or decoded (corrupt, truncated, bad syntax)."""


class NoImageData(ImageIOError):
    """DICOM objects were found, but none of them carries pixel data of an image."""


class UnsafeArchive(ImageIOError):
    """A zip archive was refused: path traversal, links, too large or too compressed (zip bomb)."""


class MultipleSeries(ImageIOError):
    """One volume was asked for, but the input holds several series."""


class GeometryError(ImageIOError):
    """A slice stack cannot be assembled into a regular grid, or the grid is one no segmentation can use.

    Attributes:
        kind: machine-readable reason: ``nonuniform_spacing``, ``missing_slices``,
            ``duplicate_positions``, ``gantry_tilt``, ``mixed_geometry``, ``bad_orientation``,
            ``spacing_out_of_range``, ``too_small``, ``too_large`` (bounds in :mod:`lrc.io.checks`).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.kind, str(self)))


class InvalidVoxels(ImageIOError):
    """The voxels are not real numbers a model can use: colour or complex data, NaN or infinite values,
    values beyond any modality's, or a rescale that is not finite or erases the image (:mod:`lrc.io.checks`)."""


class LabelGeometryMismatch(ImageIOError):
    """A label map does not lie on the grid of the image it belongs to."""


class SegmentationFormatError(ImageIOError):
    """A DICOM SEG or RTSTRUCT cannot be read or written as asked (e.g. overlapping segments)."""
