"""DICOM SEG writing, before and after issue 9: ``write_seg`` on a 512x512x300 CT and a real prediction.

The series is ``bench/make_series.py``'s; the label map is the starter model's prediction on it
(computed once, kept in ``--work``). "Before" is ``lrc/io/seg.py`` at ``--before`` (git), loaded as
its own module; "after" is the working tree's. Each repeat times before and after back to back for
both SEG types, so that both see the same load on this shared machine; the report gives every
time, the median and the best, the process CPU seconds, and the load averages around the run.

Usage: ``python bench/seg_write.py [--repeats 5] [--before d3d4986]``
Writes ``bench/results/seg_write_cpu.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
STARTER = HERE.parent / "lrc" / "assets" / "starter_ct_abdomen"
KINDS = ("binary", "labelmap")


def old_writer(commit: str, work: Path) -> ModuleType:
    """``lrc/io/seg.py`` as it was at ``commit``, importable beside the current one."""
    source = subprocess.run(
        ["git", "show", f"{commit}:lrc/io/seg.py"], capture_output=True, text=True, check=True, cwd=HERE.parent
    ).stdout
    path = work / f"seg_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"seg_{commit}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def prediction(series: Path, work: Path) -> np.ndarray:
    """The starter model's label map on the series (``X x Y x Z``), cached in ``work``."""
    cache = work / "labels.npy"
    if cache.exists():
        return np.load(cache)
    from lrc.infer import Predictor
    from lrc.io import read_volume

    labels = Predictor.from_dir(STARTER, device="cpu").predict(read_volume(series)).array
    np.save(cache, labels)
    return labels


def timed(call: Any) -> tuple[float, float]:
    """Wall and process CPU seconds of ``call()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def _speedups(summary: dict[str, Any]) -> dict[str, float]:
    return {k: round(summary["before"][k]["median_s"] / summary["after"][k]["median_s"], 2) for k in KINDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default="d3d4986", help="commit whose lrc/io/seg.py is 'before'")
    parser.add_argument("--work", type=Path, default=HERE / "out")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "seg_write_cpu.json")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_series import build
    from speed_env import machine

    from lrc.infer import Predictor
    from lrc.io import read_volume
    from lrc.io import seg as after

    series = build(args.shared_data, args.work / f"ct{args.slices}", args.slices)
    scratch = args.work / "seg_write"
    scratch.mkdir(parents=True, exist_ok=True)
    before = old_writer(args.before, scratch)
    image = read_volume(series)
    labels = image.with_array(prediction(series, scratch))
    table = Predictor.from_dir(STARTER, device="cpu").card.labels
    assert table is not None
    start = machine()
    writers = {"before": before.write_seg, "after": after.write_seg}
    times: dict[str, dict[str, list[list[float]]]] = {w: {k: [] for k in KINDS} for w in writers}
    frames: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's person-name warnings, once per call
        for kind in KINDS:  # one untimed call each: imports and highdicom's caches
            for name, write in writers.items():
                write(labels, image, table, scratch / f"{name}_{kind}.dcm", segmentation_type=kind)
        for repeat in range(args.repeats):
            for kind in KINDS:
                for name, write in writers.items():
                    out = scratch / f"{name}_{kind}.dcm"
                    wall, cpu = timed(lambda w=write, k=kind, o=out: w(labels, image, table, o, segmentation_type=k))
                    times[name][kind].append([round(wall, 4), round(cpu, 4)])
            print(repeat, json.dumps({n: {k: v[-1] for k, v in t.items()} for n, t in times.items()}), flush=True)
    import pydicom

    for kind in KINDS:
        frames[kind] = int(pydicom.dcmread(scratch / f"after_{kind}.dcm", stop_before_pixels=True).NumberOfFrames)
    summary = {
        name: {
            kind: {
                "median_s": round(statistics.median(t[0] for t in runs), 3),
                "best_s": round(min(t[0] for t in runs), 3),
                "median_cpu_s": round(statistics.median(t[1] for t in runs), 3),
            }
            for kind, runs in per_kind.items()
        }
        for name, per_kind in times.items()
    }
    report = {
        "benchmark": "seg_write",
        "series": {"shape": list(image.shape), "labelled_voxels": int((labels.array > 0).sum()), "frames": frames},
        "before_commit": args.before,
        "repeats": args.repeats,
        "machine": start,
        "loadavg_after": machine()["loadavg_1_5_15"],
        "summary": summary,
        "speedup_median": _speedups(summary),
        "runs_wall_cpu_s": times,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"summary": summary, "speedup_median": report["speedup_median"]}, indent=2))


if __name__ == "__main__":
    main()
