"""Against nnU-Net v2: Dice against CPU training time, at the same labels, held-out volumes and metric code.

Two arms per fold and seed, each trained in its own process to the same CPU budget (``--budget``
CPU seconds of the training process and its children, measured by the kernel: ``os.wait4`` for the
whole process, ``getrusage`` inside it at each snapshot), one torch thread each, nnU-Net's data
augmentation in its training process (``nnUNet_n_proc_DA=0``):

* ``nnunet-2d``: nnU-Net v2 (``--nnunet-python``: its own virtual environment) planned and
  preprocessed by ``nnUNetv2_plan_and_preprocess`` (its CPU time recorded separately, once per
  dataset), trained by ``bench/nnunet_budget_trainer.py`` (nnU-Net's default trainer, epochs
  sized to the budget) on fold ``all``, predicted by nnU-Net's predictor with its defaults
  (Gaussian sliding window, mirroring);
* ``lrc-scratch``: ``lrc finetune``'s defaults from scratch, steps sized to the budget
  (``bench/lrc_budget.py``), predicted by ``lrc.infer.Predictor`` as its card says.

Both train on the same files (``bench/nnunet_data.py``) and are scored by ``lrc.evaluate``
(Dice per organ, HD95, mean Dice over organs and cases) against the same label maps. Each arm
saves ``--snapshots`` checkpoints during its run with the cumulative CPU and wall seconds at that
moment: points of one run's curve (its schedule sized to the whole budget), not runs of a shorter
budget. Every run is kept in ``--results``; runs already there are skipped.

    python bench/nnunet_quality.py --folds A/10->A A->C --seeds 0 1 2 --budget 300
    python bench/nnunet_quality.py --summary --results bench/results/nnunet_vs_lrc_realct.json \\
        --also bench/results/nnunet_vs_lrc_realct_atoc.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from nnunet_data import Fold, load_fold, organ_names, seeded, test_images, write_raw
from nnunet_summary import plot, summarize
from speed_env import cpu_name, machine

HERE = Path(__file__).resolve().parent
WORK = HERE / "out" / "nnunet"
TRAINER = "nnUNetTrainerCPUBudget"
ARMS = ("nnunet-2d", "lrc-scratch")
FOLD_IDS = {"A/10->A": 501, "A->C": 502}


def dataset_name(fold: str, seed: int) -> str:
    """nnU-Net's name of a fold's dataset (one per seed where the labelled volumes depend on it)."""
    slug = fold.replace("/", "").replace("->", "to").replace("-", "")
    if seeded(fold):
        return f"Dataset{600 + 10 * int(fold.removeprefix('syn-k')) + seed}_{slug}s{seed}"
    return f"Dataset{FOLD_IDS[fold]}_{slug}"


def environment(results: Path, augmenters: int = 0) -> dict[str, str]:
    """The environment of every nnU-Net and training process: nnU-Net's folders, one thread, ``augmenters``
    augmentation processes (0: in the training process; the planner takes it as its thread count, so 1 there)."""
    return {
        **os.environ,
        "nnUNet_raw": str(WORK / "raw"),
        "nnUNet_preprocessed": str(WORK / "preprocessed"),
        "nnUNet_results": str(results),
        "nnUNet_n_proc_DA": str(augmenters),
        "nnUNet_compile": "false",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]),
    }


def start(command: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``command`` with its output in ``log``; the process and its start time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=HERE.parent)
    return process, time.perf_counter()


def finish(process: subprocess.Popen[bytes], started: float, log: Path) -> dict[str, float]:
    """Wait for ``process``: its CPU seconds (with its reaped children) and the wall seconds until it was
    collected (an upper bound for an arm that ended before the one collected first: the snapshot
    records hold each run's own); raise if it failed."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{process.args} exited {process.returncode}:\n{tail}")
    return {"cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "wall_s": round(time.perf_counter() - started, 1)}


def timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``command`` to its end: :func:`finish`'s times."""
    return finish(*start(command, env, log), log)


def prepare(fold: Fold, name: str, python: str) -> dict[str, Any]:
    """Write the raw dataset and run nnU-Net's planning and preprocessing once; their times and plan."""
    raw, preprocessed = WORK / "raw" / name, WORK / "preprocessed" / name
    record = preprocessed / "bench_preprocess.json"
    if record.exists():
        return dict(json.loads(record.read_text()))
    write_raw(raw, fold)
    tool = str(Path(python).parent / "nnUNetv2_plan_and_preprocess")
    number = name.split("_")[0].removeprefix("Dataset")
    times = timed(
        [tool, "-d", number, "-c", "2d", "-np", "1", "--verify_dataset_integrity"],
        environment(WORK / "results", augmenters=1),
        WORK / "logs" / f"{name}-plan.log",
    )
    plan = json.loads((preprocessed / "nnUNetPlans.json").read_text())["configurations"]["2d"]
    found = {
        "preprocess": times,
        "plan": {k: plan[k] for k in ("patch_size", "batch_size", "spacing", "median_image_size_in_voxels")},
    }
    record.write_text(json.dumps(found, indent=1) + "\n")
    return found


def launch(arm: str, name: str, seed: int, args: argparse.Namespace) -> tuple[Any, ...]:
    """Start one arm's training process: (process, start time, log, its output folder)."""
    slug = f"{name}-s{seed}-b{args.budget:g}"
    log = WORK / "logs" / f"{arm}-{slug}.log"
    folder = WORK / ("results" if arm == "nnunet-2d" else "lrc") / slug
    out = folder / name / f"{TRAINER}__nnUNetPlans__2d" if arm == "nnunet-2d" else folder
    if args.adopt and folder.exists():
        return (None, None, log, out)  # trained by a process this one did not start: wait for its files
    shutil.rmtree(folder, ignore_errors=True)  # a broken try
    if arm == "nnunet-2d":
        command = [args.nnunet_python, str(HERE / "nnunet_budget_trainer.py"), "train", "--dataset", name]
        command += ["--budget", str(args.budget), "--seed", str(seed)]
        return (*start(command, environment(folder), log), log, out)
    command = [sys.executable, str(HERE / "lrc_budget.py"), "--dataset", str(WORK / "raw" / name)]
    command += ["--budget", str(args.budget), "--seed", str(seed), "--out", str(out)]
    command += ["--snapshots", str(args.snapshots)]
    return (*start(command, environment(WORK / "results"), log), log, out)


def adopted(arm: str, out: Path, poll: float = 20.0) -> dict[str, Any]:
    """Wait for a training this process did not start to write its last files (its own snapshot
    records hold its CPU times; the kernel's totals for the whole process are not known here)."""
    last = out / "fold_all" / "checkpoint_final.pth" if arm == "nnunet-2d" else out / "snapshots.json"
    while not last.exists():
        time.sleep(poll)
    time.sleep(poll)  # the file just appeared: let its writer finish
    return {"cpu_s": None, "wall_s": None, "adopted": True}


def score(predictions: list[Any], fold: Fold) -> dict[str, Any]:
    """Dice and HD95 per organ (mean over the held-out volumes), mean Dice, per-case mean Dice."""
    from lrc.evaluate import evaluate, mean_dice, summarize
    from lrc.io.labels import LabelTable
    from lrc.label_match import match_labels

    organs = match_labels(LabelTable.from_names(dict(enumerate(organ_names(fold.table), start=1))), fold.table)
    per_case = [evaluate(p, label, organs) for p, (_, label) in zip(predictions, fold.test, strict=True)]
    means = [mean_dice(case) or 0.0 for case in per_case]
    overall = summarize(per_case)
    return {
        "dice": {organ: m["dice"] for organ, m in overall.items()},
        "hd95": {organ: m["hd95"] for organ, m in overall.items()},
        "mean_dice": sum(means) / len(means),
        "case_mean_dice": means,
    }


def predict_nnunet(out: Path, name: str, fold: Fold, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Score every snapshot of an nnU-Net run: its snapshot records with scores, the prediction's times."""
    from lrc.io import read_nifti

    snapshots = json.loads((out / "fold_all" / "snapshots.json").read_text())
    records = snapshots["snapshots"]
    inputs = test_images(WORK / "raw" / name)
    command = [args.nnunet_python, str(HERE / "nnunet_budget_trainer.py"), "predict", "--model", str(out)]
    command += ["--checkpoints", *[r["checkpoint"] for r in records], "--out", str(out / "predictions")]
    command += ["--inputs", *map(str, inputs)]
    times = timed(command, environment(out.parent.parent), WORK / "logs" / f"predict-{out.parent.parent.name}.log")
    for record in records:
        folder = out / "predictions" / Path(record["checkpoint"]).stem
        record.update(score([read_nifti(folder / i.name) for i in inputs], fold))
    return records, {"predict": times, "num_epochs": snapshots["num_epochs"]}


def predict_lrc(out: Path, name: str, fold: Fold) -> tuple[list[dict], dict]:
    """Score every snapshot of an lrc run: its snapshot records with scores, the prediction's times."""
    import torch

    from lrc.infer import Predictor
    from lrc.io import read_nifti
    from lrc.model_dirs.store import load_model

    summary = json.loads((out / "snapshots.json").read_text())
    net, card = load_model(out / "model", kind="segmentation", device="cpu")
    images = [read_nifti(path, modality="CT") for path in test_images(WORK / "raw" / name)]
    started, cpu = time.perf_counter(), time.process_time()
    for record in summary["snapshots"]:
        net.load_state_dict(torch.load(out / record["checkpoint"], map_location="cpu"))
        predictor = Predictor(net, card, device="cpu")
        record.update(score([predictor.predict(image) for image in images], fold))
    times = {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - started, 1)}
    extra = {k: summary[k] for k in ("steps", "calibration", "config")}
    return summary["snapshots"], {"predict": times, "inference_tile": card.inference_tile, **extra}


def run_pair(fold_name: str, seed: int, arms: list[str], args: argparse.Namespace) -> list[dict]:
    """Train ``arms`` for one fold and seed at once (one process each), then score them."""
    fold = load_fold(fold_name, seed, args.shared_data)
    name = dataset_name(fold_name, seed)
    prepared = prepare(fold, name, args.nnunet_python)  # done before: read back
    load = [round(v, 2) for v in os.getloadavg()]
    running = {arm: launch(arm, name, seed, args) for arm in arms}
    trained, failed = {}, []
    for arm, (process, began, log, out) in running.items():  # every process waited for before any failure is raised
        try:
            trained[arm] = finish(process, began, log) if process else adopted(arm, out)
        except RuntimeError as exc:
            failed.append(exc)
    if failed:
        raise failed[0]
    runs = []
    for arm, (_, _, _, out) in running.items():
        if arm == "nnunet-2d":
            snapshots, extra = predict_nnunet(out, name, fold, args)
            extra |= prepared
        else:
            snapshots, extra = predict_lrc(out, name, fold)
        run = {
            "arm": arm,
            "fold": fold_name,
            "k": len(fold.train),
            "seed": seed,
            "budget_cpu_s": args.budget,
            "dataset": name,
            "cpu": cpu_name(),
            "training_process": trained[arm],
            "loadavg_at_start": load,
            "snapshots": snapshots,
            **extra,
        }
        final = snapshots[-1]
        print(json.dumps({k: run[k] for k in ("arm", "fold", "seed")} | {"mean_dice": round(final["mean_dice"], 3)}))
        runs.append(run)
    return runs


def main() -> None:
    """Run every fold, seed and arm not yet in the results, or summarize them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", nargs="+", default=["A/10->A", "A->C"], help="A/10->A, A->C, syn-k1, syn-k2 ...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=300.0, help="CPU seconds of training per run")
    parser.add_argument("--snapshots", type=int, default=4, help="lrc snapshots (nnU-Net: its trainer's 4)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--nnunet-python", default="/work/nnunet-venv/bin/python")
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "nnunet_vs_lrc_realct.json")
    parser.add_argument("--parallel", type=int, default=1, help="fold-seed pairs trained at once (2 processes each)")
    parser.add_argument(
        "--adopt", action="store_true", help="wait for trainings already in the work folder instead of restarting them"
    )
    parser.add_argument("--also", type=Path, nargs="*", default=[], help="more result files for the tables and plot")
    parser.add_argument("--summary", action="store_true", help="only print the tables of --results")
    args = parser.parse_args()
    if not args.summary:
        import torch

        torch.set_num_threads(1)  # scoring and lrc's prediction: the same one thread as training
        found = json.loads(args.results.read_text()) if args.results.exists() else {"runs": []}
        runs = found["runs"]
        done = {(r["arm"], r["fold"], r["seed"], r["budget_cpu_s"]) for r in runs}
        version = subprocess.run(
            [args.nnunet_python, "-c", "import importlib.metadata as m; print(m.version('nnunetv2'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        setting = {"nnunetv2": version, "machine": machine(), "torch_threads": 1, "nnUNet_n_proc_DA": 0}
        todo = {}
        for fold in args.folds:
            for seed in args.seeds:
                arms = [arm for arm in args.arms if (arm, fold, seed, args.budget) not in done]
                if arms:  # datasets written and preprocessed one at a time, before any training
                    prepare(load_fold(fold, seed, args.shared_data), dataset_name(fold, seed), args.nnunet_python)
                    todo[(fold, seed)] = arms
        args.results.parent.mkdir(exist_ok=True)
        with ThreadPoolExecutor(args.parallel) as pool:  # CPU budgets: the pairs' contention changes no budget
            pending = [pool.submit(run_pair, fold, seed, arms, args) for (fold, seed), arms in todo.items()]
            for finished in as_completed(pending):
                runs += finished.result()
                found = {"setting": setting, "runs": runs}
                args.results.write_text(json.dumps(found, indent=1) + "\n")
    runs = [run for path in [args.results, *args.also] for run in json.loads(path.read_text())["runs"]]
    print(summarize(runs))
    plot(runs, args.results.with_suffix(".png"))


if __name__ == "__main__":
    main()
