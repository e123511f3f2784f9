"""Speed, end to end through ``lrc segment``: a 512x512x300 CT DICOM series in, DICOM SEG out.

Two measurements on the same series (``bench/make_series.py``), ``--repeats`` times each, in fresh
processes so that start-up counts:

* ``lrc segment SERIES --format dicom-seg`` as a user runs it: whole-process wall time;
* the same steps in a staged child process (this file with ``--child``) that times each one:
  ``startup`` (interpreter until this file runs), ``imports`` (torch, lrc, highdicom), ``model_load``
  (weights to the device; on CUDA the first CUDA call), ``decode`` (``read_volume``), then the
  predictor's ``preprocess``, ``model``, ``postprocess`` (:class:`lrc.infer.stages.StageTimes`), then
  ``seg_binary`` (what ``lrc segment`` writes) and ``seg_labelmap``. After that cold pass the child
  repeats decode, predict and SEG ``--warm`` times with the model loaded: a warm worker's numbers.

The model is the shipped starter model (2D U-Net, 4 organs): real weights, real label maps, so the
SEG holds what a user would get. ``--predictor-file`` swaps in another ``Predictor`` implementation
(the before/after of bench/SPEED.md: ``git show 0c7dbac:lrc/infer/predictor.py``).

Usage: ``python bench/speed_e2e.py [--device cpu|cuda] [--slices 300] [--repeats 3] [--warm 2]``
Writes ``bench/results/speed_e2e_<device>[_tag].json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STARTER = HERE.parent / "lrc" / "assets" / "starter_ct_abdomen"
STAGES = ("startup", "imports", "model_load", "decode", "preprocess", "model", "postprocess", "seg_binary")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """The staged run inside a fresh process (``--child``); returns the seconds per stage."""
    cold: dict[str, float] = {"startup": time.time() - args.spawned}
    start = time.perf_counter()
    import torch

    from lrc.infer import Predictor
    from lrc.infer.stages import StageTimes
    from lrc.io import read_volume
    from lrc.io.seg import write_seg
    from lrc.model_dirs.store import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    cold["imports"] = time.perf_counter() - start

    def timed(into: dict[str, float], name: str, call: Any) -> Any:
        # Wall seconds, and the process's CPU seconds (all threads) as "<name>_cpu": the machine is
        # shared, and CPU time moves less with other people's load than wall time does.
        begin, cpu = time.perf_counter(), time.process_time()
        result = call()
        into[name] = time.perf_counter() - begin
        into[f"{name}_cpu"] = time.process_time() - cpu
        return result

    def load(path: Path | None) -> Any:
        if not path:
            return Predictor.from_dir(args.model, device=args.device)
        import importlib.util

        spec = importlib.util.spec_from_file_location("predictor_under_test", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net, card = load_model(args.model, kind="segmentation", device=args.device)
        return module.Predictor(net, card, args.device)

    predictor = timed(cold, "model_load", lambda: load(args.predictor_file))
    # --compare-file: a second predictor timed on the same image right after each warm prediction,
    # so that before and after see the same load on this shared machine.
    other = load(args.compare_file) if args.compare_file else None
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()

    def one_pass(into: dict[str, float]) -> None:
        image = timed(into, "decode", lambda: read_volume(args.series))
        times = StageTimes()
        staged = "times" in inspect.signature(predictor.predict).parameters
        labels = timed(into, "predict", lambda: predictor.predict(image, times) if staged else predictor.predict(image))
        into.update(times.seconds)
        assert predictor.card.labels is not None
        for kind in ("binary", "labelmap"):
            out = Path(args.scratch) / f"seg_{kind}.dcm"
            timed(
                into,
                f"seg_{kind}",
                lambda kind=kind, out=out: write_seg(labels, image, predictor.card.labels, out, segmentation_type=kind),
            )
        into["labelled_voxels"] = int((labels.array > 0).sum())
        if other is not None and into is not cold:
            compared = timed(into, "predict_compared", lambda: other.predict(image))
            into["compared_agreement"] = float((compared.array == labels.array).mean())

    one_pass(cold)
    warm: list[dict[str, float]] = []
    for _ in range(args.warm):
        warm.append({})
        one_pass(warm[-1])
    return {
        "cold": cold,
        "warm": warm,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": _peak_rss_mb(),
        "device": str(predictor.device),
    }


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: argparse.Namespace, series: Path, scratch: Path) -> dict[str, Any]:
    """One staged child process; its JSON line."""
    command = [sys.executable, __file__, "--child", "--series", str(series), "--scratch", str(scratch)]
    command += ["--device", args.device, "--model", str(args.model), "--warm", str(args.warm)]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--predictor-file", str(args.predictor_file)] if args.predictor_file else []
    command += ["--compare-file", str(args.compare_file)] if args.compare_file else []
    begin = time.perf_counter()
    run = subprocess.run([*command, "--spawned", repr(time.time())], capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"staged child failed:\n{run.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - begin
    return result


def run_cli(args: argparse.Namespace, series: Path, scratch: Path) -> float:
    """``lrc segment SERIES --format dicom-seg`` in a fresh process: wall seconds."""
    command = [sys.executable, "-c", "from cli import main; main()", "segment", str(series)]
    command += ["--model", str(args.model), "--out", str(scratch / "cli_seg.dcm"), "--format", "dicom-seg"]
    command += ["--device", args.device]
    begin = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode:
        raise RuntimeError(f"lrc segment failed:\n{run.stderr[-3000:]}")
    return time.perf_counter() - begin


def summarise(children: list[dict[str, Any]], cli: list[float]) -> dict[str, Any]:
    """Medians per stage (cold and warm), totals, and the stage that costs most."""

    def medians(runs: list[dict[str, float]]) -> dict[str, float]:
        keys = [k for k in runs[0] if k not in ("labelled_voxels", "compared_agreement")]
        return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}

    cold = medians([c["cold"] for c in children])
    warm = medians([w for c in children for w in c["warm"]]) if children[0]["warm"] else {}
    staged = _staged(cold)
    summary: dict[str, Any] = {
        "cold_s": cold,
        "warm_s": warm,
        "cold_total_s": round(sum(staged.values()), 3),
        "staged_process_wall_s": round(statistics.median(c["process_wall"] for c in children), 3),
        "lrc_segment_wall_s": round(statistics.median(cli), 3) if cli else None,
        "slowest_cold_stage": max(staged, key=lambda k: staged[k]),
    }
    if warm and "predict_compared" in warm:
        summary["compared_over_ours_predict"] = round(warm["predict_compared"] / warm["predict"], 2)
        summary["compared_over_ours_predict_cpu"] = round(warm["predict_compared_cpu"] / warm["predict_cpu"], 2)
    if warm:
        work = _staged(warm)
        summary["warm_total_s"] = round(sum(work.values()), 3)
        summary["warm_total_labelmap_s"] = round(summary["warm_total_s"] - work["seg_binary"] + warm["seg_labelmap"], 3)
    return summary


def _staged(medians: dict[str, float]) -> dict[str, float]:
    # A predictor without stage timing (the "before" one) has only its total, "predict".
    names = STAGES if "model" in medians else (*STAGES[:4], "predict", STAGES[-1])
    return {k: medians[k] for k in names if k in medians}


def main() -> None:
    """Build the series, run ``lrc segment`` and the staged child ``--repeats`` times, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, default=STARTER)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the staged child (0: default)")
    parser.add_argument("--predictor-file", type=Path, help="another lrc/infer/predictor.py to time")
    parser.add_argument("--compare-file", type=Path, help="a predictor.py timed beside ours in each warm pass")
    parser.add_argument("--skip-cli", action="store_true", help="no separate lrc segment run")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path, default=HERE / "out")
    # the staged child
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--series", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    sys.path.insert(0, str(HERE))
    from make_series import build
    from speed_env import machine

    series = build(args.shared_data, args.work / f"ct{args.slices}", args.slices)
    scratch = args.work / "speed_e2e"
    scratch.mkdir(parents=True, exist_ok=True)
    before = machine(args.device)
    children, cli = [], []
    for _ in range(args.repeats):
        children.append(run_child(args, series, scratch))
        if not args.skip_cli:
            cli.append(run_cli(args, series, scratch))
        print(json.dumps(children[-1]["cold"]), cli[-1:] or "", flush=True)
    report = {
        "benchmark": "speed_e2e",
        "series": {"slices": args.slices, "shape": [512, 512, args.slices], "files_mb": _folder_mb(series)},
        "model": str(args.model.relative_to(HERE.parent) if args.model.is_relative_to(HERE.parent) else args.model),
        "predictor_file": str(args.predictor_file) if args.predictor_file else None,
        "machine": before,
        "loadavg_after": machine(args.device)["loadavg_1_5_15"],
        "threads": children[0]["threads"],
        "summary": summarise(children, cli),
        "runs": children,
        "lrc_segment_wall_s": cli,
    }
    name = f"speed_e2e_{args.device.split(':')[0]}{'_' + args.tag if args.tag else ''}.json"
    path = args.out or HERE / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))


def _folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6, 1)


if __name__ == "__main__":
    main()
