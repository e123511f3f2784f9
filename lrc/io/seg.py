"""DICOM Segmentation (SEG) objects out of and into label maps, via highdicom.

Writing references the source series the label map was drawn on: one SEG frame per source
slice and segment (BINARY), or one frame per slice (LABELMAP, smaller and faster, but only
receivers that know the 2024 LABELMAP type read it). Label values become segment numbers
1..N in label-table order, as the standard requires consecutive numbers.

Reading returns per-segment masks, so that overlapping segments (allowed in BINARY and
FRACTIONAL SEGs) are never merged silently; :meth:`SegmentMasks.label_map` merges them only when
they do not overlap, or by an explicit priority.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

import lrc
from lrc.io.atomic import write_dataset
from lrc.io.errors import SegmentationFormatError
from lrc.io.geometry import align_to
from lrc.io.labels import Label, LabelTable
from lrc.io.volume import LPS_TO_RAS, Volume, VolumeInfo

SegType = Literal["binary", "labelmap"]
SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # SEG, Label Map SEG


def is_seg_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a DICOM Segmentation (binary/fractional or label map) file."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # anything unreadable is simply not a SEG
        return False
    return str(ds.get("SOPClassUID", "")) in SEG_SOP_CLASSES


def write_seg(
    labels: Volume,
    image: Volume | VolumeInfo,
    table: LabelTable,
    path: str | os.PathLike[str],
    *,
    segmentation_type: SegType = "binary",
    series_description: str = "LRC segmentation",
    series_number: int = 901,
    algorithm_name: str = "LRC",
    algorithm_version: str = lrc.__version__,
    automatic: bool = True,
) -> Path:
    """Write a label map as a DICOM SEG that references ``image``'s source series.

    Args:
        labels: integer label map on ``image``'s grid (axis flips/permutations are undone).
        image: the volume read from DICOM that the labels were drawn on; its grid and source are used,
            so its headers alone do (:func:`lrc.io.read_dicom_info`).
        table: meaning of each label value; every non-zero value present must be in it.
        path: output file, written atomically.
        segmentation_type: ``binary`` (widely read) or ``labelmap`` (compact).

    Raises:
        SegmentationFormatError: the image has no DICOM source with UIDs, or a label is unknown.
        LabelGeometryMismatch: the label map is not on the image grid.
    """
    source = image.source
    if source is None or not source.has_uids or not source.headers:
        raise SegmentationFormatError(
            "a DICOM SEG must reference the DICOM series it segments; this image has no complete DICOM "
            "source (read from NIfTI, tilt-corrected, or its files carry no UIDs)"
        )
    labels = align_to(labels, image)
    _check_values(labels.array, table)
    lut = np.zeros(int(max(labels.array.max(), max(table))) + 1, dtype=np.uint8 if len(table) < 256 else np.uint16)
    for number, value in enumerate(table, start=1):
        lut[value] = number
    frames = _frames(labels.array, lut)  # Z x rows x columns, segment numbers
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    descriptions = [
        _describe(number, table[value], algorithm if automatic else None) for number, value in enumerate(table, start=1)
    ]
    with warnings.catch_warnings():
        # Source names like "ANON" are legal single-component names; highdicom warns about them.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = _segmentation(source.headers, frames, segmentation_type, descriptions, series_description, series_number)
    return write_dataset(seg, path)


def warm_up() -> hd.seg.Segmentation:
    """Build a one-frame SEG of a synthetic 16 x 16 CT slice in memory, and return it.

    highdicom reads its tables of the standard (~0.4 s of JSON) and fills its caches on first use;
    a process that will write SEGs (an io worker) calls this at its start (~0.3 s) so that its first
    real SEG does not pay ~1 s more than the next ones (300-slice CT, 2 CPU cores).
    """
    uid = pydicom.uid.generate_uid
    ct = pydicom.Dataset()
    ct.file_meta = pydicom.dataset.FileMetaDataset()
    ct.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ct.SOPClassUID, ct.SOPInstanceUID = pydicom.uid.CTImageStorage, uid()
    ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.FrameOfReferenceUID = uid(), uid(), uid()
    ct.PatientID, ct.PatientName, ct.PatientBirthDate, ct.PatientSex = "warm-up", "Warm^Up", "", "O"
    ct.StudyID, ct.StudyDate, ct.StudyTime, ct.AccessionNumber = "1", "20260101", "000000", ""
    ct.ReferringPhysicianName, ct.Modality, ct.SeriesNumber, ct.InstanceNumber = "", "CT", 1, 1
    ct.ImagePositionPatient, ct.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ct.PixelSpacing, ct.SliceThickness, ct.Rows, ct.Columns = [1, 1], 1, 16, 16
    ct.SamplesPerPixel, ct.PhotometricInterpretation = 1, "MONOCHROME2"
    ct.BitsAllocated, ct.BitsStored, ct.HighBit, ct.PixelRepresentation = 16, 16, 15, 1
    ct.PixelData = np.zeros((16, 16), np.int16).tobytes()
    frames = np.zeros((1, 16, 16), np.uint8)
    frames[0, 4:8, 4:8] = 1
    described = [_describe(1, Label.named(1, "liver"), None)]
    return _segmentation((ct,), frames, "binary", described, "warm-up", 1)


def _check_values(array: np.ndarray, table: LabelTable) -> None:
    """Refuse negative values and values not in ``table``.

    ``np.unique`` over a 512x512x300 map costs ~0.3 s; a min, a max and the table answer the usual
    case (every value from 0 to the maximum is known) in ~10 ms, and only a doubt pays for unique.
    """
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high <= max(table, default=0):  # else some value is unknown: no table of size high
        known = np.zeros(high + 1, dtype=bool)
        known[0] = True
        known[np.array([v for v in table if v <= high], dtype=np.intp)] = True
        if known.all():
            return
    values = np.unique(array)
    unknown = sorted(int(v) for v in values if v != 0 and int(v) not in table)
    if unknown or np.any(values < 0):
        raise SegmentationFormatError(
            f"label values {unknown or values[values < 0].tolist()} are not in the label table (known: {list(table)})"
        )


def _frames(array: np.ndarray, lut: np.ndarray, tile: int = 64) -> np.ndarray:
    """Segment numbers as C-contiguous ``Z x rows x columns`` frames from an ``X x Y x Z`` label map.

    highdicom walks the frames one by one and needs each frame contiguous (a strided view made its
    per-frame work ~2.3 s of a 300-slice SEG). A Fortran-ordered map (the predictor's) already is:
    ``array.T`` is the frames, taken as they are or through the look-up table. A C-ordered one is
    copied in 64x64 column tiles, which keeps both sides in cache (~0.1 s against ~0.7 s for a
    plain ``np.ascontiguousarray(array.T)``). The look-up table is skipped when it maps every
    value to itself.
    """
    identity = lut.dtype == array.dtype and np.array_equal(lut, np.arange(len(lut)))
    if array.T.flags.c_contiguous:
        return array.T if identity else lut[array.T]
    nx, ny, nz = array.shape
    out = np.empty((nz, ny, nx), dtype=lut.dtype)  # Z x rows (y) x columns (x)
    for x0 in range(0, nx, tile):
        for y0 in range(0, ny, tile):
            block = array[x0 : x0 + tile, y0 : y0 + tile]  # x x y x Z
            out[:, y0 : y0 + tile, x0 : x0 + tile] = (block if identity else lut[block]).transpose(2, 1, 0)
    return out


def _segmentation(
    headers: tuple[pydicom.Dataset, ...],
    frames: np.ndarray,
    segmentation_type: SegType,
    descriptions: list[hd.seg.SegmentDescription],
    series_description: str,
    series_number: int,
) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=[source_header(h) for h in headers],
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues[segmentation_type.upper()],
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="LRC",
        manufacturer_model_name="lrc",
        software_versions=lrc.__version__,
        device_serial_number="none",
        series_description=series_description,
    )


def source_header(header: pydicom.Dataset) -> pydicom.Dataset:
    """A copy of a source header that derived-object writers accept.

    Real files carry an empty SpecificCharacterSet (meaning the default repertoire), which
    highdicom rejects; the attribute is dropped in the copy.
    """
    # Dataset(header) would share its dict; items() gives the elements as read (raw ones not decoded)
    copy = pydicom.Dataset(dict(header.items()))
    copy.file_meta = header.file_meta if hasattr(header, "file_meta") else pydicom.dataset.FileMetaDataset()
    if "SpecificCharacterSet" in copy and not copy.SpecificCharacterSet:
        del copy.SpecificCharacterSet
    return copy


def _describe(
    number: int, label: Label, algorithm: hd.AlgorithmIdentificationSequence | None
) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label.name,
        segmented_property_category=hd.sr.CodedConcept(label.category[1], label.category[0], label.category[2]),
        segmented_property_type=hd.sr.CodedConcept(label.type[1], label.type[0], label.type[2]),
        algorithm_type=(
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algorithm else hd.seg.SegmentAlgorithmTypeValues.MANUAL
        ),
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*label.color),
    )


@dataclass(eq=False)
class SegmentMasks:
    """Segments of a DICOM SEG on a grid.

    Attributes:
        masks: ``S x X x Y x Z`` float32 in [0, 1] (binary segments hold 0 or 1).
        affine: RAS voxel-to-world affine of the grid.
        table: label value (the SEG segment number) -> meaning.
        fractional: True when the SEG is FRACTIONAL.
    """

    masks: np.ndarray
    affine: np.ndarray
    table: LabelTable
    fractional: bool

    def overlap_voxels(self, threshold: float = 0.5) -> int:
        """Number of voxels inside more than one segment."""
        return int(((self.masks >= threshold).sum(axis=0) > 1).sum())

    def label_map(self, threshold: float = 0.5, overlap: Literal["error", "first", "last"] = "error") -> Volume:
        """One integer label map (values = segment numbers).

        Args:
            threshold: a voxel is inside a segment when its value is at least this.
            overlap: ``error`` refuses overlapping segments; ``first``/``last`` give the lower or
                higher segment number priority where segments overlap.

        Raises:
            SegmentationFormatError: segments overlap and ``overlap="error"``.
        """
        inside = self.masks >= threshold  # S x X x Y x Z
        if overlap == "error":
            count = self.overlap_voxels(threshold)
            if count:
                raise SegmentationFormatError(
                    f"{count} voxels belong to more than one segment; a single label map cannot hold them. "
                    "Use the per-segment masks, or choose overlap='first' or 'last'"
                )
        order = list(range(len(self.table)))
        if overlap == "first":
            order.reverse()
        values = list(self.table)
        out = np.zeros(self.masks.shape[1:], dtype=np.uint8 if max(values, default=0) < 256 else np.uint16)
        for index in order:
            out[inside[index]] = values[index]
        return Volume(array=out, affine=self.affine, modality="SEG")


def read_seg(path: str | os.PathLike[str], reference: Volume | VolumeInfo | None = None) -> SegmentMasks:
    """Read a DICOM SEG into per-segment masks.

    Args:
        path: the SEG file.
        reference: the image the SEG was made on (its grid and source; its voxels are not used). When
            given, the masks are returned on its grid, matched by SOP instance UIDs (slices the SEG leaves
            out are empty; the UID reference is trusted even where a writer, like dcmqi, omits
            SpatialLocationsPreserved). Without it, the masks are on the SEG's own grid, from its plane
            positions.

    Raises:
        SegmentationFormatError: not a readable SEG, or it references none of ``reference``'s slices.
    """
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:
        raise SegmentationFormatError(f"{path.name}: not a readable DICOM SEG ({type(exc).__name__}: {exc})") from exc
    table = _table(seg)
    numbers = list(table)
    fractional = seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    if reference is not None and reference.source is not None and reference.source.has_uids:
        referenced = {uid for _, _, uid in seg.get_source_image_uids()}
        wanted = list(reference.source.sop_instance_uids)
        if not referenced & set(wanted):
            raise SegmentationFormatError(
                f"{path.name}: the SEG references none of the image's slices (it was made on another series)"
            )
        try:
            pixels = seg.get_pixels_by_source_instance(  # Z x rows x columns x S
                [u for u in wanted if u in referenced],
                segment_numbers=numbers,
                rescale_fractional=True,
                dtype=np.float32,
                ignore_spatial_locations=True,
            )
        except Exception as exc:
            raise SegmentationFormatError(f"{path.name}: cannot map its frames to the image ({exc})") from exc
        full = np.zeros((len(wanted), *pixels.shape[1:]), dtype=np.float32)
        rows = [i for i, u in enumerate(wanted) if u in referenced]
        full[rows] = pixels
        masks = full.transpose(3, 2, 1, 0)  # S x X x Y x Z
        return SegmentMasks(np.ascontiguousarray(masks), reference.affine, table, fractional)
    try:
        volume = seg.get_volume(segment_numbers=numbers, rescale_fractional=True, dtype=np.float32)
    except Exception as exc:
        raise SegmentationFormatError(f"{path.name}: its frames do not form a regular volume ({exc})") from exc
    array = volume.array  # slices x rows x columns x S, indexed as the volume's affine says
    masks = np.moveaxis(array, 3, 0)
    result = SegmentMasks(np.ascontiguousarray(masks), LPS_TO_RAS @ volume.affine, table, fractional)
    if reference is not None:
        return _onto(result, reference)
    return result


def _onto(masks: SegmentMasks, reference: Volume | VolumeInfo) -> SegmentMasks:
    """Reorient masks onto a reference grid that holds the same voxels (no resampling)."""
    channels = [align_to(Volume(m, masks.affine), reference).array for m in masks.masks]
    return SegmentMasks(np.stack(channels), reference.affine, masks.table, masks.fractional)


def _table(seg: hd.seg.Segmentation) -> LabelTable:
    labels = []
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        if number == 0:  # LABELMAP SEGs may describe the background as segment 0
            continue
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        color = None
        if "RecommendedDisplayCIELabValue" in item:
            color = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        labels.append(
            Label(
                value=number,
                name=str(item.get("SegmentLabel") or kind.CodeMeaning),
                color=tuple(int(c) for c in color) if color is not None else Label.named(number, "x").color,  # type: ignore[arg-type]
                category=(str(category.CodingSchemeDesignator), str(category.CodeValue), str(category.CodeMeaning)),
                type=(str(kind.CodingSchemeDesignator), str(kind.CodeValue), str(kind.CodeMeaning)),
            )
        )
    return LabelTable(labels)
