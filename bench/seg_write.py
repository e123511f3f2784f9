"""DICOM SEG (and RTSTRUCT) writing across versions of ``lrc``, on a 512x512x300 CT and a real prediction.

The series is ``bench/make_series.py``'s; the label map is the starter model's prediction on it,
in the predictor's memory layout (computed once, kept in ``--work``). Each version is a commit's
``lrc`` package (``git archive``) or ``work`` (this working tree), run in its own child process so
that every module it uses (label alignment, the writer, the DICOM encoder) is that version's. The
children take turns, ``--rounds`` times, so all versions see the same load on this shared machine;
each child writes one untimed file per kind (imports, highdicom's caches), then times one per kind.
Kinds: ``binary`` and ``labelmap`` SEGs (``write_seg``), ``rtstruct`` (``write_rtstruct``).
The report gives every time, the median and the best, process CPU seconds, load averages, and
speed-ups against the first version.

Usage: ``python bench/seg_write.py [--versions d3d4986 609b038 work] [--kinds binary labelmap] [--rounds 5]``
Writes ``bench/results/seg_write_cpu.json`` (``--out`` elsewhere). ``--first`` times instead a fresh
process's first BINARY SEG (this tree), without and with ``lrc.io.seg.warm_up`` (what an io worker
runs at its start), pairs of processes taking turns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STARTER = HERE.parent / "lrc" / "assets" / "starter_ct_abdomen"
KINDS = ("binary", "labelmap", "rtstruct")


def package(version: str, work: Path) -> Path:
    """A folder whose ``lrc`` is ``version``'s (``work``: this tree's)."""
    if version == "work":
        return HERE.parent
    folder = work / f"lrc_{version}"
    if not (folder / "lrc").is_dir():
        archive = subprocess.run(["git", "archive", version, "lrc"], capture_output=True, check=True, cwd=HERE.parent)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
    return folder


def prediction(series: Path, work: Path) -> Path:
    """The starter model's label map on the series (``X x Y x Z``, as the predictor lays it out), cached."""
    cache = work / "labels.npy"
    if not cache.exists():
        import numpy as np

        from lrc.infer import Predictor
        from lrc.io import read_volume

        np.save(cache, Predictor.from_dir(STARTER, device="cpu").predict(read_volume(series)).array)
    return cache


def inputs(series: Path, labels: Path) -> tuple[Any, Any, Any]:
    """In a child: the series, the label map on it and the starter model's label table."""
    import numpy as np

    from lrc.infer import Predictor
    from lrc.io import read_volume

    image = read_volume(series)
    return image, image.with_array(np.load(labels)), Predictor.from_dir(STARTER, device="cpu").card.labels


def child(series: Path, labels: Path, out: Path, root: Path, kinds: list[str]) -> dict[str, list[float]]:
    """In the child: this ``lrc``'s writers, one warm-up and one timed write per kind."""
    import lrc
    from lrc.io.rtstruct import write_rtstruct
    from lrc.io.seg import write_seg

    assert Path(lrc.__file__).resolve().is_relative_to(root.resolve()), f"{lrc.__file__} is not {root}'s"
    image, mask, table = inputs(series, labels)

    def write(kind: str) -> None:
        if kind == "rtstruct":
            write_rtstruct(mask, image, table, out / "rtstruct.dcm")
        else:
            write_seg(mask, image, table, out / f"{kind}.dcm", segmentation_type=kind)

    times = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's person-name warnings, once per call
        for kind in kinds:
            write(kind)
        for kind in kinds:
            wall, cpu = time.perf_counter(), time.process_time()
            write(kind)
            times[kind] = [round(time.perf_counter() - wall, 4), round(time.process_time() - cpu, 4)]
    return times


def child_first(series: Path, labels: Path, out: Path, warmed: bool) -> dict[str, float]:
    """In the child: the process's first BINARY SEG, after ``lrc.io.seg.warm_up`` (as an io worker
    starts) or not; both times."""
    from lrc.io.seg import warm_up, write_seg

    image, mask, table = inputs(series, labels)
    times = {"warm_up": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warmed:
            start = time.perf_counter()
            warm_up()
            times["warm_up"] = round(time.perf_counter() - start, 4)
        start = time.perf_counter()
        write_seg(mask, image, table, out / "first.dcm")
        times["first_seg"] = round(time.perf_counter() - start, 4)
    return times


def first_writes(series: Path, labels: Path, out: Path, rounds: int) -> dict[str, Any]:
    """``rounds`` pairs of fresh processes (this tree's ``lrc``), without and with the warm-up."""
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warmed": []}
    for _ in range(rounds):
        for name in runs:
            argv = [sys.executable, __file__, "--child-first", str(series), str(labels), str(out), name]
            result = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=HERE.parent)
            runs[name].append(json.loads(result.stdout.splitlines()[-1]))
    median = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    return {"runs": runs, "median_s": median}


def run_child(root: Path, series: Path, labels: Path, out: Path, kinds: list[str]) -> dict[str, list[float]]:
    """One child process with ``root``'s ``lrc`` first on the path; its times per kind."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    argv = [sys.executable, __file__, "--child", str(series), str(labels), str(out), str(root), ",".join(kinds)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.splitlines()[-1])


def summarise(runs: list[list[float]]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(r[0] for r in runs), 3),
        "best_s": round(min(r[0] for r in runs), 3),
        "median_cpu_s": round(statistics.median(r[1] for r in runs), 3),
    }


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        series, labels, out, root = (Path(a) for a in sys.argv[2:6])
        print(json.dumps(child(series, labels, out, root, sys.argv[6].split(","))))
        return
    if len(sys.argv) == 6 and sys.argv[1] == "--child-first":
        series, labels, out = (Path(a) for a in sys.argv[2:5])
        print(json.dumps(child_first(series, labels, out, sys.argv[5] == "warmed")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--versions", nargs="+", default=["d3d4986", "609b038", "work"])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=["binary", "labelmap"])
    parser.add_argument("--work", type=Path, default=HERE / "out")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "seg_write_cpu.json")
    parser.add_argument(
        "--first", action="store_true", help="Time a process's first BINARY SEG, with and without lrc.io.seg.warm_up."
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_series import build
    from speed_env import machine

    series = build(args.shared_data, args.work / f"ct{args.slices}", args.slices)
    scratch = args.work / "seg_write"
    scratch.mkdir(parents=True, exist_ok=True)
    labels = prediction(series, scratch)
    if args.first:
        report = {"benchmark": "seg_write_first", "machine": machine(), "rounds": args.rounds}
        report |= first_writes(series, labels, scratch / "out_first", args.rounds)
        report["loadavg_after"] = machine()["loadavg_1_5_15"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["median_s"], indent=2))
        return
    roots = {v: package(v, scratch) for v in args.versions}
    start = machine()
    times: dict[str, dict[str, list[list[float]]]] = {v: {k: [] for k in args.kinds} for v in args.versions}
    for repeat in range(args.rounds):
        for version, root in roots.items():
            for kind, run in run_child(root, series, labels, scratch / f"out_{version}", args.kinds).items():
                times[version][kind].append(run)
        print(repeat, json.dumps({v: {k: r[-1] for k, r in t.items()} for v, t in times.items()}), flush=True)
    import pydicom

    last = scratch / f"out_{args.versions[-1]}"
    frames = {
        k: int(pydicom.dcmread(last / f"{k}.dcm", stop_before_pixels=True).NumberOfFrames)
        for k in args.kinds
        if k != "rtstruct"
    }
    summary = {v: {k: summarise(runs) for k, runs in per_kind.items()} for v, per_kind in times.items()}
    first = args.versions[0]
    report = {
        "benchmark": "seg_write",
        "series": {"shape": [512, 512, args.slices], "frames": frames},
        "versions": args.versions,
        "rounds": args.rounds,
        "machine": start,
        "loadavg_after": machine()["loadavg_1_5_15"],
        "summary": summary,
        "speedup_median_vs_first": {
            v: {k: round(summary[first][k]["median_s"] / summary[v][k]["median_s"], 2) for k in args.kinds}
            for v in args.versions
        },
        "runs_wall_cpu_s": times,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"summary": summary, "speedup_median_vs_first": report["speedup_median_vs_first"]}, indent=2))


if __name__ == "__main__":
    main()
