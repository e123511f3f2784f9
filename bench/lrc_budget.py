"""``lrc finetune``'s defaults from scratch, trained to a CPU budget with timed snapshots (one process per run).

The run's step count is sized to ``--budget`` CPU seconds of this process: a calibration
fine-tuning of a few steps (its model discarded, its CPU time not counted) gives the cost of the
set-up and of one step; the run then takes as many steps as fit what is left of the budget, so
that its cosine schedule ends at the budget (nnU-Net's trainer sizes its epochs the same way,
``bench/nnunet_budget_trainer.py``). Every setting but ``steps`` and ``seed`` is
``FinetuneConfig``'s default; all ``k`` labelled volumes train (no validation split, as nnU-Net's
fold ``all``). At ``--snapshots`` evenly spaced steps the network's weights are saved with the
cumulative CPU and wall seconds of the run so far (``snapshots.json``).

    python bench/lrc_budget.py --dataset bench/out/nnunet/raw/Dataset501_A10A --budget 300 --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

STARTED = time.perf_counter()
CALIBRATION_STEPS = 6


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def calibrate(cases: list, table: object, out: Path, seed: int) -> dict[str, float]:
    """CPU seconds of a fine-tuning's set-up and of one step, from a short run (its model deleted)."""
    from lrc.train.finetune import finetune
    from lrc.train.finetune_config import FinetuneConfig

    times: list[float] = []
    started = cpu_seconds()
    finetune(
        cases,
        table,
        out,
        FinetuneConfig(steps=CALIBRATION_STEPS, seed=seed),
        validation=[],
        device="cpu",
        progress=lambda step, _: times.append(cpu_seconds()),
    )
    shutil.rmtree(out)
    step = (times[-1] - times[0]) / (len(times) - 1)
    return {"setup_cpu_s": times[0] - started - step, "step_cpu_s": step, "cpu_s": cpu_seconds() - started}


def main() -> None:
    """Calibrate, then fine-tune to the budget with snapshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="an nnU-Net raw dataset (bench/nnunet_data.py)")
    parser.add_argument("--budget", type=float, required=True, help="CPU seconds of this process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch
    from nnunet_data import read_training

    from lrc.train.finetune import finetune
    from lrc.train.finetune_config import FinetuneConfig

    torch.set_num_threads(1)
    cases, table = read_training(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    before = time.perf_counter()
    calibration = calibrate(cases, table, args.out / "calibration", args.seed)
    calibration_wall = time.perf_counter() - before
    uncounted = calibration["cpu_s"]
    left = args.budget - (cpu_seconds() - uncounted) - calibration["setup_cpu_s"]
    steps = max(1, int(left // calibration["step_cpu_s"]))
    marks = sorted({max(1, round(steps * j / args.snapshots)) for j in range(1, args.snapshots + 1)})
    records: list[dict] = []

    def snapshot(step: int, net: torch.nn.Module) -> None:
        if step not in marks:
            return
        name = f"snapshot_{len(records) + 1}.pt"
        torch.save(net.state_dict(), args.out / name)
        records.append(
            {
                "checkpoint": name,
                "steps": step,
                "train_cpu_s": round(cpu_seconds() - uncounted, 1),
                "train_wall_s": round(time.perf_counter() - STARTED - calibration_wall, 1),
            }
        )

    config = FinetuneConfig(steps=steps, seed=args.seed)
    finetune(cases, table, args.out / "model", config, validation=[], device="cpu", snapshot=snapshot)
    summary = {"steps": steps, "calibration": calibration, "config": config.to_json(), "snapshots": records}
    (args.out / "snapshots.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({"steps": steps, "cpu_s": round(cpu_seconds() - uncounted, 1)}))


if __name__ == "__main__":
    main()
