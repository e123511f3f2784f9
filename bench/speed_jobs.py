"""Speed of one segmentation's worker jobs, segment then export, on a 512x512 CT DICOM series: two code trees paired.

Each round runs, once per code tree and in a fresh process for each (this file with ``--child``), what the
workers run for one segmentation of the series (``bench/make_series.py``: uncompressed, or JPEG 2000
lossless): the series stored in a new data folder (SQLite records, a blob folder; the upload's check, not
timed), the starter model loaded and highdicom's tables read (as a warm worker holds them, not timed), then
the segment job (``worker.runners.segment``: decode, predict, store the NIfTI) and the export job
(``worker.runners.export``: DICOM SEG, then RTSTRUCT), each timed in wall and CPU seconds, with the wall
seconds of each stage the job reports. ``--before ROOT`` names the other checkout, whose ``app/``,
``worker/`` and ``lrc/`` its child imports; the rounds alternate the trees (before, after; after, before;
...) so that both see the same load on this shared machine, and the ratios are taken round by round.

Usage: ``python bench/speed_jobs.py --before ROOT [--after ROOT] [--rounds 5] [--slices 300] [--syntax explicit j2k]``
(a tree of a commit: ``mkdir ROOT && git archive COMMIT | tar -x -C ROOT``).
Writes ``bench/results/speed_jobs_cpu[_tag].json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STARTER = HERE.parent / "lrc" / "assets" / "starter_ct_abdomen"


def _shared(root: Path, module: str) -> Any:
    """``core.<module>`` of the tree ``root``, or ``app.<module>`` in a tree from before ``core/`` held the
    settings, context and records (the directory decides: an installed ``core`` may be another tree's)."""
    return importlib.import_module(f"{'core' if (root / 'core').is_dir() else 'app'}.{module}")


def _tables(root: Path) -> Any:
    """The ORM tables of the tree ``root`` (``records.tables``, ``records.models`` in older trees)."""
    return _shared(root, "records.tables" if (root / "core" / "records" / "tables.py").is_file() else "records.models")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """``--child prepare`` or ``--child export`` with the code of ``args.root``, in a daemonic process as a
    Celery prefork worker runs its jobs (compressed planes are decoded in that process, so its CPU seconds
    are all the job's)."""
    sys.path.insert(0, str(args.root))
    receive, send = multiprocessing.Pipe(duplex=False)
    worker = multiprocessing.get_context("fork").Process(target=_in_worker, args=(args, send), daemon=True)
    worker.start()
    while not receive.poll(1.0):
        if not worker.is_alive():
            raise RuntimeError(f"the job's process ended with exit code {worker.exitcode} before its answer")
    result = receive.recv()
    worker.join()
    return dict(result)


def _in_worker(args: argparse.Namespace, send: Any) -> None:
    send.send(prepare(args) if args.child == "prepare" else export_job(args))


def _context(root: Path, data: Path) -> Any:
    settings = _shared(root, "settings").Settings(data_dir=data, device="cpu", starter_model_dir=data / "no-starter")
    return _shared(root, "context").build_context(settings)


def _timed(ctx: Any, root: Path, job_id: str, call: Any) -> dict[str, Any]:
    """Run ``call(job, report)`` on job ``job_id``: wall and CPU seconds, and each reported stage's wall seconds."""
    with ctx.db.session() as session:
        job = session.get(_tables(root).Job, job_id)
        assert job is not None
        session.expunge(job)
    marks: list[tuple[str, float]] = []
    begin, cpu = time.perf_counter(), time.process_time()
    call(job, lambda _fraction, stage, *_, **__: marks.append((stage, time.perf_counter())))
    end = time.perf_counter()
    stages: dict[str, float] = {}
    for (name, start), (_, stop) in zip(marks, [*marks[1:], ("", end)], strict=True):
        stages[name] = round(stages.get(name, 0.0) + stop - start, 3)
    return {"wall_s": round(end - begin, 3), "cpu_s": round(time.process_time() - cpu, 3), "stages": stages}


def _segmentation(ctx: Any, root: Path) -> Any:
    with ctx.db.session() as session:
        (seg,) = session.query(_tables(root).Segmentation).all()
        session.expunge(seg)
    return seg


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Store the series in ``args.data`` as an upload does, and run its segment job with the model loaded."""
    import hashlib

    from app.services import segmentations, studies
    from worker.predictors import PredictorCache
    from worker.runners.segment import segment

    project = _shared(args.root, "records.projects").DEFAULT
    registry = "model_versions" if (args.root / "app" / "services" / "model_versions.py").is_file() else "models"
    register_directory = importlib.import_module(f"app.services.{registry}").register_directory
    ctx = _context(args.root, args.data)
    version = register_directory(ctx, "starter", STARTER, project, status="production")
    paths = sorted(args.series.glob("*.dcm"))
    uploads = [studies.Upload(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
    study, _ = studies.ingest(ctx, uploads, args.data / "upload", None, project)
    segmentations.create(ctx, study.series[0].id, "starter:1", None, project)
    predictors = PredictorCache(size=1, device="cpu")
    predictors.get(version.id, Path(version.path))  # a warm infer worker holds the model
    job_id = _segmentation(ctx, args.root).job_id
    timed = _timed(ctx, args.root, job_id, lambda job, report: segment(ctx, job, report, predictors))
    ctx.db.engine.dispose()
    return timed


def export_job(args: argparse.Namespace) -> dict[str, Any]:
    """The export job of the segmentation ``prepare`` left in ``args.data``, on a copy of it (blobs linked)."""
    from lrc.io.seg import warm_up
    from worker.runners.export import export

    with tempfile.TemporaryDirectory(prefix="speed-jobs-", dir=args.work) as folder:
        data = Path(folder) / "data"
        shutil.copytree(args.data / "blobs", data / "blobs", copy_function=os.link)  # never written in place
        shutil.copy2(args.data / "records.sqlite", data / "records.sqlite")
        ctx = _context(args.root, data)
        warm_up()  # an io worker reads highdicom's tables at its start
        seg = _segmentation(ctx, args.root)
        timed = _timed(ctx, args.root, seg.export_job_id, lambda job, report: export(ctx, job, report))
        timed["formats"] = sorted(_segmentation(ctx, args.root).outputs)
        assert len(timed["formats"]) > len(seg.outputs), "the export wrote nothing"
        ctx.db.engine.dispose()
    return timed


def spawn(what: str, root: Path, series: Path, data: Path, work: Path) -> dict[str, Any]:
    """One child (``prepare`` or ``export``) with the code of ``root``; its JSON."""
    command = [sys.executable, __file__, "--child", what, "--root", str(root), "--series", str(series)]
    command += ["--data", str(data), "--work", str(work)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRC_") and k != "PYTHONPATH"}
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child for {root} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    """Run the rounds (or, with ``--child``, one child) and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["prepare", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    parser.add_argument("--series", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--before", type=Path, help="The other checkout (the baseline).")
    parser.add_argument("--after", type=Path, default=HERE.parent, help="The checkout under test (default: this one).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--syntax", nargs="+", default=["explicit", "j2k"], choices=["explicit", "j2k"])
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=HERE / "out")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    if args.before is None:
        parser.error("--before is required")
    sys.path.insert(0, str(HERE))
    from make_series import build
    from speed_env import machine

    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    report: dict[str, Any] = {"benchmark": "speed_jobs", "machine": machine("cpu"), "trees": {}, "series": {}}
    report["trees"] = {name: {"root": str(root), "commit": _commit(root)} for name, root in trees.items()}
    for syntax in args.syntax:
        series = build(
            args.shared_data,
            args.work / f"ct{args.slices}{'' if syntax == 'explicit' else '_' + syntax}",
            args.slices,
            syntax,
        )
        data = args.work / f"jobs-{series.name}"
        shutil.rmtree(data, ignore_errors=True)
        segment = spawn("prepare", trees["after"], series, data, args.work)
        print(syntax, "segment", json.dumps(segment), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for number in range(args.rounds):
            order = ("before", "after") if number % 2 == 0 else ("after", "before")
            for name in order:
                runs[name].append(spawn("export", trees[name], series, data, args.work))
                print(syntax, number, name, json.dumps(runs[name][-1]), flush=True)
        report["series"][syntax] = {"slices": args.slices, "segment": segment, "export_runs": runs}
        report["series"][syntax].update(_compare(segment, runs))
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    path = args.out or HERE / "results" / f"speed_jobs_cpu{'_' + args.tag if args.tag else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def _compare(segment: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per tree: the export job's wall and CPU seconds and its stages (median, min, max), and the two jobs'
    wall seconds together (the one segment job's, whose code both trees share, plus each export's); the
    after/before ratios and the seconds saved, round by round."""
    out: dict[str, Any] = {}
    for name, rounds in runs.items():
        out[name] = {f"export_{what}": summary([r[what] for r in rounds]) for what in ("wall_s", "cpu_s")}
        stages = {stage for r in rounds for stage in r["stages"]}
        out[name]["export_stages_s"] = {
            st: summary([r["stages"].get(st, 0.0) for r in rounds]) for st in sorted(stages)
        }
        out[name]["jobs_wall_s"] = summary([segment["wall_s"] + r["wall_s"] for r in rounds])
    pairs = list(zip(runs["before"], runs["after"], strict=True))
    out["after_over_before"] = {
        "export_wall": summary([a["wall_s"] / b["wall_s"] for b, a in pairs]),
        "export_cpu": summary([a["cpu_s"] / b["cpu_s"] for b, a in pairs]),
        "jobs_wall": summary([(segment["wall_s"] + a["wall_s"]) / (segment["wall_s"] + b["wall_s"]) for b, a in pairs]),
    }
    out["export_saved_wall_s"] = summary([b["wall_s"] - a["wall_s"] for b, a in pairs])
    out["export_saved_cpu_s"] = summary([b["cpu_s"] - a["cpu_s"] for b, a in pairs])
    return out


def _commit(root: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None  # None for an archived tree: the JSON's "root" names it


if __name__ == "__main__":
    main()
