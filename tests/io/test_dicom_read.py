"""Reading real and generated DICOM series: order, spacing, orientation, rescale, encodings."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal
from pydicom.uid import JPEG2000Lossless, RLELossless

from lrc.io import ReadOptions, UnsupportedInput, read_images, read_nifti, read_volume
from lrc.io.geometry import align_to, axis_codes
from lrc.io.volume import LPS_TO_RAS
from tests.dicom_factory import line

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def sitk_affine(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """RAS affine and XYZ array of a series read by SimpleITK/GDCM (an independent reader)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps, sitk.GetArrayFromImage(image).transpose(2, 1, 0)


@pytest.fixture(scope="module")
def volume(shared_data: Path):
    """The Siemens JPEG 2000 CT series, read once for the tests of this module."""
    return read_volume(sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*")))


class TestRealJpeg2000Series:
    """The Siemens JPEG 2000 CT series: 20 slices, 2 mm apart (SliceThickness says 3), no UIDs."""

    def test_shape_and_spacing_from_positions(self, volume):
        assert volume.shape == (512, 512, 20)
        assert_allclose(volume.spacing, (0.9765625, 0.9765625, 2.0))
        assert volume.modality == "CT"
        assert axis_codes(volume.affine) == "LPS"

    def test_slices_sorted_by_position_with_rescale_applied(self, volume, shared_data: Path):
        files = sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))
        by_z = sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
        assert by_z != files  # file names sort in descending z: order must come from positions
        for k in (0, 7, 19):
            ds = pydicom.dcmread(by_z[k])
            expected = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            assert_array_equal(volume.array[:, :, k].T, expected)
            world = volume.lps_affine @ np.array([0, 0, k, 1.0])
            assert_allclose(world[:3], [float(v) for v in ds.ImagePositionPatient], atol=1e-4)
        assert volume.array.min() == -1024

    def test_geometry_matches_simpleitk(self, volume, shared_data: Path):
        affine, array = sitk_affine(shared_data / "dicom" / "ct_series_totalseg")
        assert_allclose(volume.affine, affine, atol=1e-4)
        assert_array_equal(volume.array, array)

    def test_totalsegmentator_labels_overlay(self, volume, shared_data: Path):
        labels = align_to(read_nifti(shared_data / "dicom" / "ct_series_totalseg" / "example_seg_dicom.nii.gz"), volume)
        liver = volume.array[labels.array == 5]
        aorta = volume.array[labels.array == 52]
        assert liver.size == 366708
        assert 60 < liver.mean() < 120  # contrast-enhanced liver parenchyma
        assert aorta.mean() > liver.mean() + 50  # enhanced blood pool
        assert volume.array[labels.array == 0].mean() < liver.mean()

    def test_missing_uids_noted(self, volume):
        assert volume.source is not None
        assert not volume.source.has_uids
        assert any("no Series/Study/SOP Instance UIDs" in w for w in volume.warnings)


def test_dcmqi_slices_sorted_ascending_and_referenced(shared_data: Path):
    folder = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice"
    volume = read_volume(folder)
    assert volume.shape == (512, 512, 3)
    assert_allclose(volume.spacing, (0.810547, 0.810547, 1.0), atol=1e-6)
    uids = [pydicom.dcmread(folder / n, stop_before_pixels=True).SOPInstanceUID for n in ("03.dcm", "02.dcm", "01.dcm")]
    assert list(volume.source.sop_instance_uids) == uids  # z = -128.69, -127.69, -126.69
    assert volume.source.attributes["PatientID"]
    assert len(volume.source.headers) == 3
    assert_allclose(volume.affine, sitk_affine(folder)[0], atol=1e-4)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_series_equal_uncompressed(make_series, syntax: str):
    plain = read_volume(make_series(line(4), folder="plain", sop_uids=[f"1.2.3.{k}" for k in range(4)]))
    coded = read_volume(make_series(line(4), folder="coded", transfer_syntax=syntax))
    assert_array_equal(coded.array, plain.array)
    assert_allclose(coded.affine, plain.affine)


def test_series_over_the_voxel_limit_refused_before_decoding(make_series):
    """Compressed data inflates without bound (168 bytes of JPEG 2000 hold a 4096x4096 slice): the size
    the headers give is checked before anything is decoded or allocated."""
    folder = make_series(line(40), size=512, transfer_syntax=JPEG2000Lossless)  # 10.5 M voxels
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedInput, match="40 planes of 512x512: 10485760 voxels, over the reader's limit"):
            read_volume(folder, ReadOptions(max_voxels=10_485_759, workers=1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2  # decoding would have allocated 42 MB (float32) and more
    assert read_volume(folder, ReadOptions(max_voxels=10_485_760, workers=1)).shape == (512, 512, 40)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_pydicom_mr_encodings_decode_identically(name: str):
    reference = read_volume(PYDICOM_FILES / "MR_small.dcm")
    volume = read_volume(PYDICOM_FILES / name)
    assert volume.modality == "MR"
    assert_array_equal(volume.array, reference.array)


def test_jpeg_extended_decodes(tmp_path: Path):
    """Real 12-bit JPEG (process 2/4) pixel data, relabelled as CT with patient geometry."""
    ds = pydicom.dcmread(PYDICOM_FILES / "JPGExtended.dcm")
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    ds.save_as(tmp_path / "jpeg.dcm")
    volume = read_volume(tmp_path / "jpeg.dcm")
    assert_array_equal(volume.array[:, :, 0].T, pydicom.dcmread(tmp_path / "jpeg.dcm").pixel_array)


def test_parallel_decode_equals_serial(make_series):
    files = make_series(line(30), transfer_syntax=RLELossless)
    serial = read_volume(files, ReadOptions(workers=1))
    parallel = read_volume(files, ReadOptions(workers=2))
    assert_array_equal(parallel.array, serial.array)
    assert [int(v) for v in serial.array[0, 0, :] + 1024] == list(range(100, 130))


def test_order_from_positions_not_names_or_instance_numbers(make_series):
    positions = line(5)
    shuffled = [positions[i] for i in (3, 0, 4, 1, 2)]
    files = make_series(shuffled, names=["a.dcm", "b.dcm", "c.dcm", "d.dcm", "e.dcm"], instance_numbers=[1, 2, 3, 4, 5])
    volume = read_volume(files)
    markers = volume.array[0, 0, :] + 1024  # stored marker = 100 + index in the shuffled list
    assert [int(m) - 100 for m in markers] == [1, 3, 4, 0, 2]
    assert_allclose(volume.origin[2], -100.0)


def test_oblique_stack_affine_follows_dicom_formula(make_series, tmp_path: Path):
    angle = np.radians(30)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    column = np.array([0.0, 0.0, -1.0])  # coronal-ish oblique
    normal = np.cross(row, column)
    positions = [tuple(np.array([10.0, -20.0, 5.0]) + 3.0 * k * normal) for k in range(4)]
    make_series(positions, orientation=(*row, *column), pixel_spacing=(0.7, 0.9))
    volume = read_volume(tmp_path / "series")
    assert_allclose(volume.spacing, (0.9, 0.7, 3.0), atol=1e-5)
    i, j, k = 5, 7, 2
    expected = np.array(positions[k]) + row * 0.9 * i + column * 0.7 * j
    assert_allclose((volume.lps_affine @ [i, j, k, 1])[:3], expected, atol=1e-3)
    assert_allclose(volume.affine, sitk_affine(tmp_path / "series")[0], atol=1e-3)


def test_rescale_slope_gives_float(make_series):
    volume = read_volume(make_series(line(2), slope=0.5, intercept=-10))
    assert volume.array.dtype == np.float32
    assert volume.array[0, 0, 1] == pytest.approx(101 * 0.5 - 10)


def test_blank_uids_split_by_acquisition(make_series, tmp_path: Path):
    make_series(line(3), folder="both/a", uids=False, acquisition_number=1)
    make_series(line(3), folder="both/b", uids=False, acquisition_number=2)
    result = read_images([tmp_path / "both"])
    assert len(result.volumes) == 2
    assert not result.errors


def test_mixed_sizes_in_one_series_split(make_series):
    files = make_series(
        [*line(4), (-25.0, -25.0, 50.0)], sizes=[64, 64, 64, 64, 32], series_uid="1.2.826.0.1.3680043.9.1"
    )
    result = read_images(files)
    assert sorted(v.shape for v in result.volumes) == [(32, 32, 1), (64, 64, 4)]
    assert all(any("image geometries" in w for w in v.warnings) for v in result.volumes)


def test_same_instance_twice_is_dropped(make_series, tmp_path: Path):
    files = make_series(line(3))
    shutil.copy(files[1], tmp_path / "series" / "copy.dcm")
    volume = read_volume(tmp_path / "series")
    assert volume.shape[2] == 3
    assert any("duplicate copies" in w for w in volume.warnings)


def test_small_spacing_jitter_accepted(make_series):
    positions = [(-25.0, -25.0, z) for z in (0.0, 2.0, 4.02, 6.0, 8.0)]
    volume = read_volume(make_series(positions))
    assert_allclose(volume.spacing[2], 2.0)
    assert any("varies" in w for w in volume.warnings)


def test_gantry_tilt_corrected_on_request(make_series, tmp_path: Path):
    shift_per_slice = 0.8 * 2  # two pixels along +x per slice
    positions = [(-25.0 + shift_per_slice * k, -25.0, 3.0 * k) for k in range(4)]
    make_series(positions)
    volume = read_volume(tmp_path / "series", ReadOptions(correct_tilt=True))
    assert volume.source is None
    assert_allclose(volume.affine[:3, 2], [0, 0, 3.0], atol=1e-6)
    straight = read_volume(make_series(line(4, 3.0, 0.0), folder="straight"))
    # Slice 3 moved by 6 voxels along i: what was at i lies at i + 6 on the orthogonal grid.
    assert_array_equal(volume.array[20:40, 10:50, 3], straight.array[14:34, 10:50, 3])


def test_enhanced_multiframe_equals_single_frames(shared_data: Path, tmp_path: Path):
    """A Legacy Converted Enhanced CT (one multi-frame file) made by highdicom from the real slices."""
    import highdicom as hd

    folder = shared_data / "dicom" / "seg_dcmqi" / "ct-3slice"
    singles = [pydicom.dcmread(folder / n) for n in ("01.dcm", "02.dcm", "03.dcm")]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
            legacy_datasets=singles,
            series_instance_uid=hd.UID(),
            series_number=99,
            sop_instance_uid=hd.UID(),
            instance_number=1,
        )
    enhanced.save_as(tmp_path / "enhanced.dcm")
    reference = read_volume(folder)
    volume = read_volume(tmp_path / "enhanced.dcm")
    assert_array_equal(volume.array, reference.array)
    assert_allclose(volume.affine, reference.affine, atol=1e-4)
    positions = [float(d.ImagePositionPatient[2]) for d in singles]
    expected = tuple(int(i) + 1 for i in np.argsort(positions))  # frame numbers in ascending z
    assert volume.source.frames == expected
    assert len(volume.source.headers) == 1


def test_jpeg_baseline_decodes(shared_data: Path, tmp_path: Path):
    """8-bit JPEG baseline (process 1), encoded by Pillow from a real CT slice windowed to 8 bits."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(shared_data / "dicom" / "seg_dcmqi" / "ct-3slice" / "01.dcm")
    hu = ds.pixel_array.astype(np.float32) + float(ds.RescaleIntercept)
    pixels = np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jpeg.dcm")
    volume = read_volume(tmp_path / "jpeg.dcm")
    decoded = volume.array[:, :, 0].T.astype(np.int16)
    assert np.abs(decoded - pixels.astype(np.int16)).mean() < 2.0  # lossy, but the same image
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.int16)  # Pillow's own decoder
    assert np.abs(decoded - reference).max() <= 1  # decoders may round the inverse DCT differently
