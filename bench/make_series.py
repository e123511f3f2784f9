"""Build a 300-slice 512x512 CT series for benchmarks from the real 20-slice Siemens series.

The real slices (JPEG 2000, 2 mm apart) are decoded, interpolated linearly along z to 300 slices
(the real anatomy's 38 mm stretched), placed ``step_mm`` apart (0.8 mm: a 240 mm abdomen, as a
real 300-slice CT; 3D models resample by it), and written as a new series with full UIDs, either
uncompressed (explicit VR little endian, what most PACS send) or JPEG 2000 lossless (what this
scanner's archive sent). ``series.json`` in the folder records the parameters; a folder built with
others is rebuilt (the first version placed the slices 0.127 mm apart).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from lrc.io import read_volume


def build(shared_data: Path, out: Path, slices: int = 300, syntax: str = "explicit", step_mm: float = 0.8) -> Path:
    """Write the series into ``out`` (skipped when it already holds this series)."""
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"slices": slices, "syntax": syntax, "step_mm": step_mm}
    record = out / "series.json"
    if len(list(out.glob("*.dcm"))) == slices and record.exists() and json.loads(record.read_text()) == parameters:
        return out
    for old in out.glob("*.dcm"):
        old.unlink()
    source = shared_data / "dicom" / "ct_series_totalseg"
    files = sorted(source.glob("CT.*"))
    volume = read_volume(files)
    template = pydicom.dcmread(files[0])
    z = np.linspace(0, volume.shape[2] - 1, slices)
    low = np.floor(z).astype(int)
    high = np.minimum(low + 1, volume.shape[2] - 1)
    weight = (z - low)[None, None, :]
    hu = (volume.array[:, :, low] * (1 - weight) + volume.array[:, :, high] * weight).round().astype(np.int16)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    step = step_mm
    first = volume.lps_affine[:3, 3]
    rng = np.random.default_rng(0)
    for k in rng.permutation(slices):  # written in random order, as a PACS might deliver them
        ds = copy.deepcopy(template)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientName, ds.PatientID = "BENCH^SERIES", "BENCH0001"
        ds.InstanceNumber = int(k) + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in first + np.array([0.0, 0.0, step * k])]
        stored = (hu[:, :, k].T.astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OW"
        if syntax == "j2k":
            ds.compress(JPEG2000Lossless)
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    record.write_text(json.dumps(parameters) + "\n")
    return out


def main() -> None:
    """Command line: ``python bench/make_series.py SHARED_DATA OUT [--slices N] [--syntax explicit|j2k]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shared_data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--syntax", choices=["explicit", "j2k"], default="explicit")
    parser.add_argument("--step-mm", type=float, default=0.8)
    args = parser.parse_args()
    build(args.shared_data, args.out, args.slices, args.syntax, args.step_mm)


if __name__ == "__main__":
    main()
