"""Benchmark: read a 300-slice 512x512 CT series, lrc.io against its peers, in one run.

Peers: SimpleITK's ImageSeriesReader (GDCM, C++), and the plain pydicom loop a user would write
(read every file, sort by position, stack, rescale). Each reader runs in its own fresh process
(imports done, one warm-up read so the page cache is warm for everyone), then reads the series
``--repeats`` times; peak resident memory of that process is recorded too.

Usage: ``python bench/read_series.py [--shared-data ../shared/data] [--repeats 5]``
Writes ``bench/results/read_series.json`` and ``bench/results/read_series.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
READERS = ("lrc", "lrc_serial", "simpleitk", "pydicom_loop")


def read_with(reader: str, folder: Path) -> tuple[int, ...]:
    """Read the series with one reader; return the array shape (x, y, z)."""
    if reader in ("lrc", "lrc_serial"):
        from lrc.io import ReadOptions, read_volume

        volume = read_volume(folder, ReadOptions(workers=1 if reader == "lrc_serial" else None))
        return volume.shape
    if reader == "simpleitk":
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        series = sitk.ImageSeriesReader()
        series.SetFileNames(series.GetGDCMSeriesFileNames(str(folder)))
        image = series.Execute()
        return tuple(image.GetSize())
    if reader == "pydicom_loop":
        import numpy as np
        import pydicom

        datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        stack = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets], -1)
        return tuple(stack.shape)
    raise ValueError(reader)


def worker(reader: str, folder: Path, repeats: int) -> dict[str, object]:
    """Runs inside the measuring process."""
    shape = read_with(reader, folder)  # warm-up: imports, page cache, decoder processes
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read_with(reader, folder)
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"reader": reader, "shape": list(shape), "seconds": times, "peak_rss_mb": peak_mb}


def measure(reader: str, folder: Path, repeats: int) -> dict[str, object]:
    """Run one reader in a fresh process and collect its JSON line."""
    run = subprocess.run(
        [sys.executable, __file__, "--worker", reader, "--folder", str(folder), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE.parent,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def plot(results: dict[str, list[dict[str, object]]], path: Path) -> None:
    """Median read time per reader and data set, with min-max bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6))
    for axis, (dataset, rows) in zip(axes, results.items(), strict=True):
        names = [str(r["reader"]) for r in rows]
        medians = [statistics.median(r["seconds"]) for r in rows]  # type: ignore[arg-type]
        lows = [m - min(r["seconds"]) for m, r in zip(medians, rows, strict=True)]  # type: ignore[arg-type]
        highs = [max(r["seconds"]) - m for m, r in zip(medians, rows, strict=True)]  # type: ignore[arg-type]
        axis.barh(names, medians, xerr=[lows, highs], color=["#2a7", "#7c9", "#888", "#bbb"][: len(names)])
        axis.set_title(f"{dataset}: 300 x 512x512 CT slices")
        axis.set_xlabel("seconds (median, min-max)")
        axis.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Build the series if needed, measure every reader, write JSON and a plot."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.repeats)))
        return
    sys.path.insert(0, str(HERE))
    from make_series import build

    data = HERE / "out"
    datasets = {
        "uncompressed": build(args.shared_data, data / "ct300", syntax="explicit"),
        "jpeg2000": build(args.shared_data, data / "ct300_j2k", syntax="j2k"),
    }
    results = {name: [measure(r, folder, args.repeats) for r in READERS] for name, folder in datasets.items()}
    summary = {}
    for name, rows in results.items():
        sitk = statistics.median(next(r for r in rows if r["reader"] == "simpleitk")["seconds"])  # type: ignore[arg-type]
        summary[name] = {
            str(r["reader"]): {
                "median_s": round(statistics.median(r["seconds"]), 3),  # type: ignore[arg-type]
                "ratio_to_simpleitk": round(statistics.median(r["seconds"]) / sitk, 2),  # type: ignore[arg-type]
                "peak_rss_mb": round(float(r["peak_rss_mb"]), 0),  # type: ignore[arg-type]
            }
            for r in rows
        }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    (out / "read_series.json").write_text(
        json.dumps({"machine": machine, "summary": summary, "raw": results}, indent=2) + "\n"
    )
    plot(results, out / "read_series.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
