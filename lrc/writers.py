"""The output writers of a segmentation, by name: NIfTI, DICOM SEG and RTSTRUCT.

One registry (as nnU-Net's ``imageio/reader_writer_registry.py``) that the API's ``format`` query,
the command line's ``--format`` choices, the export runner, the DICOMweb index and the gateway all
look names up in. Each :class:`Writer` holds its name, the media type and file name a downloaded
result takes, its file extension, whether it needs the DICOM instances the labels were drawn on,
and the function that writes it (wrapping :mod:`lrc.io.nifti`, :mod:`lrc.io.seg`,
:mod:`lrc.io.rtstruct`).

Importing this module imports no image library: the command line builds its choices from it and
starts fast; a writer's module is imported when it first writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from lrc.io.labels import LabelTable
    from lrc.io.volume import Volume, VolumeInfo


class UnknownFormat(ValueError):
    """No writer is registered under the name asked for; the message lists the names there are."""


@dataclass(frozen=True)
class WriteOptions:
    """What a caller may set of the output; a writer uses the fields it has a place for.

    Attributes:
        algorithm_name: the DICOM SEG's algorithm identification (the model's name).
        segmentation_type: DICOM SEG ``binary`` (widely read) or ``labelmap`` (compact).
    """

    algorithm_name: str = "LRC"
    segmentation_type: Literal["binary", "labelmap"] = "binary"


class WriteFn(Protocol):
    """Write ``labels`` to ``path``, atomically; the written path."""

    def __call__(
        self,
        labels: Volume,
        image: Volume | VolumeInfo | None,
        table: LabelTable | None,
        path: Path,
        options: WriteOptions,
    ) -> Path: ...


@dataclass(frozen=True)
class Writer:
    """One output format.

    Attributes:
        name: what the API's ``format`` and the command line's ``--format`` call it.
        title: what a person calls it.
        media_type: the ``Content-Type`` of a downloaded result.
        extension: the end of its file names.
        filename: the name a downloaded result takes.
        needs_dicom: it references the DICOM instances the labels were drawn on, so it is written
            only for an image read from DICOM with its UIDs (and with a label table).
    """

    name: str
    title: str
    media_type: str
    extension: str
    filename: str
    needs_dicom: bool
    _write: WriteFn = field(repr=False)

    def write(
        self,
        labels: Volume,
        path: str | Path,
        image: Volume | VolumeInfo | None = None,
        table: LabelTable | None = None,
        options: WriteOptions | None = None,
    ) -> Path:
        """Write the label map ``labels`` (on ``image``'s grid) to ``path``, atomically; the written path.

        ``image`` may be the series' headers alone (:func:`lrc.io.read_dicom_info`): the writers use its
        grid and source, never its voxels.

        Raises:
            SegmentationFormatError: a DICOM writer without the image or the label table, an image with
                no DICOM source, or a label the table lacks (:mod:`lrc.io.seg`, :mod:`lrc.io.rtstruct`).
            LabelGeometryMismatch: the label map is not on the image's grid.
            ValueError: a NIfTI name that does not end in ``.nii`` or ``.nii.gz``.
        """
        if self.needs_dicom and (image is None or table is None):
            from lrc.io.errors import SegmentationFormatError

            raise SegmentationFormatError(
                f"a {self.title} is written with the DICOM image it references and a label table"
            )
        return self._write(labels, image, table, Path(path), options or WriteOptions())


def _nifti(
    labels: Volume, image: Volume | VolumeInfo | None, table: LabelTable | None, path: Path, options: WriteOptions
) -> Path:
    from lrc.io.nifti import write_nifti

    return write_nifti(labels, path)


def _seg(
    labels: Volume, image: Volume | VolumeInfo | None, table: LabelTable | None, path: Path, options: WriteOptions
) -> Path:
    from lrc.io.seg import write_seg

    assert image is not None  # Writer.write checks both
    assert table is not None
    return write_seg(
        labels,
        image,
        table,
        path,
        segmentation_type=options.segmentation_type,
        algorithm_name=options.algorithm_name,
    )


def _rtstruct(
    labels: Volume, image: Volume | VolumeInfo | None, table: LabelTable | None, path: Path, options: WriteOptions
) -> Path:
    from lrc.io.rtstruct import write_rtstruct

    assert image is not None  # Writer.write checks both
    assert table is not None
    return write_rtstruct(labels, image, table, path)


NIFTI = Writer("nifti", "NIfTI", "application/gzip", ".nii.gz", "segmentation.nii.gz", False, _nifti)
DICOM_SEG = Writer("dicom-seg", "DICOM SEG", "application/dicom", ".dcm", "segmentation.dcm", True, _seg)
RTSTRUCT = Writer("rtstruct", "RTSTRUCT", "application/dicom", ".dcm", "rtstruct.dcm", True, _rtstruct)
WRITERS: Mapping[str, Writer] = MappingProxyType({w.name: w for w in (NIFTI, DICOM_SEG, RTSTRUCT)})


def get_writer(name: str) -> Writer:
    """The writer called ``name``.

    Raises:
        UnknownFormat: no writer has that name.
    """
    try:
        return WRITERS[name]
    except KeyError:
        raise UnknownFormat(f"format must be one of {', '.join(WRITERS)}, got {name!r}") from None


def writer_names(*, needs_dicom: bool | None = None) -> tuple[str, ...]:
    """The writers' names in the registry's order; only those that need (or do not need) DICOM sources."""
    return tuple(w.name for w in WRITERS.values() if needs_dicom is None or w.needs_dicom is needs_dicom)
