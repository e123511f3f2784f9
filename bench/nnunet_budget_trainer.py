"""nnU-Net v2 trained to a CPU budget, and its predictor: the nnU-Net side of ``bench/nnunet_quality.py``.

Runs in nnU-Net's own virtual environment, never the project's (it imports no ``lrc``). nnU-Net
reads ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` when ``nnunetv2.paths`` is
first imported, so the caller sets them in this process's environment before it starts
(``bench/nnunet_quality.py`` does); ``main`` refuses to run without them.

:class:`nnUNetTrainerCPUBudget` is nnU-Net's default trainer (its planner's network, deep
supervision, augmentation, SGD with the poly schedule) with epochs of 25 iterations (and 5
validation iterations, nnU-Net's 250:50 ratio) and as many epochs as fit ``budget_seconds`` of CPU:
after the first epoch it sizes the epoch count (and so the poly schedule) from the CPU time spent so
far and the first epoch's cost. At ``snapshots`` evenly spaced epochs it writes a checkpoint and
records the cumulative CPU and wall seconds of this process (with its reaped children) at that
moment in ``snapshots.json``: the curve of one run. nnU-Net's validation of the training cases at
the end (``perform_actual_validation``) is left out: with one labelled volume they are the training
cases, and the held-out volumes are scored by the caller.

nnU-Net's predictor rebuilds the network through the trainer class a checkpoint names, which it
looks up by importing every trainer module of its package (some import torchvision, whose
operators this CPU build of torch lacks); :func:`predict` hands it this module's class by name
instead, so nothing is written into nnU-Net's environment.

    python bench/nnunet_budget_trainer.py train --dataset Dataset501_X --budget 300 --seed 0
    python bench/nnunet_budget_trainer.py predict --model DIR --checkpoints snapshot_1.pth snapshot_2.pth \\
        --inputs A_0000.nii.gz --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

PATHS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
STARTED = time.perf_counter()
CPU = torch.device("cpu")


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class nnUNetTrainerCPUBudget(nnUNetTrainer):
    """nnU-Net's default trainer sized to ``budget_seconds`` of CPU, with timed snapshots."""

    budget_seconds = 300.0
    snapshots = 4

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int | str,
        dataset_json: dict,
        device: torch.device = CPU,
    ) -> None:  # nnU-Net records its trainers' arguments by these names
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_iterations_per_epoch = 25
        self.num_val_iterations_per_epoch = 5
        self.num_epochs = 1000  # until the first epoch has been timed
        self.snapshot_epochs: list[int] = []
        self.snapshot_records: list[dict] = []
        self._epoch_cpu = 0.0

    def on_epoch_start(self) -> None:
        self._epoch_cpu = cpu_seconds()
        super().on_epoch_start()

    def on_epoch_end(self) -> None:
        epoch = self.current_epoch
        if epoch == 0:
            spent, cost = cpu_seconds(), cpu_seconds() - self._epoch_cpu
            self.num_epochs = max(1, 1 + int((self.budget_seconds - spent) // max(cost, 1e-6)))
            self.lr_scheduler.max_steps = self.num_epochs  # the poly schedule ends at the budget
            self.snapshot_epochs = sorted(
                {max(0, round(self.num_epochs * j / self.snapshots) - 1) for j in range(1, self.snapshots + 1)}
            )
            self.print_to_log_file(f"CPU budget {self.budget_seconds:.0f} s: {self.num_epochs} epochs")
        super().on_epoch_end()  # current_epoch + 1 from here on
        if epoch in self.snapshot_epochs:
            name = f"snapshot_{len(self.snapshot_records) + 1}.pth"
            self.current_epoch -= 1  # save_checkpoint records current_epoch + 1 as the epochs done
            self.save_checkpoint(os.path.join(self.output_folder, name))
            self.current_epoch += 1
            self.snapshot_records.append(
                {
                    "checkpoint": name,
                    "epochs": epoch + 1,
                    "iterations": (epoch + 1) * self.num_iterations_per_epoch,
                    "train_cpu_s": round(cpu_seconds(), 1),
                    "train_wall_s": round(time.perf_counter() - STARTED, 1),
                }
            )
            Path(self.output_folder, "snapshots.json").write_text(
                json.dumps({"num_epochs": self.num_epochs, "snapshots": self.snapshot_records}, indent=1) + "\n"
            )

    def run_training(self) -> None:
        """nnU-Net's epoch loop, re-reading ``num_epochs`` (sized after the first epoch) every epoch."""
        self.on_train_start()
        while self.current_epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                checks = [
                    self.validation_step(next(self.dataloader_val)) for _ in range(self.num_val_iterations_per_epoch)
                ]
                self.on_validation_epoch_end(checks)
            self.on_epoch_end()
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """Not run: the training cases are the only validation cases (fold ``all``)."""


def train(dataset: str, configuration: str, budget: float, seed: int) -> Path:
    """Train fold ``all`` of ``dataset`` to ``budget`` CPU seconds; the trainer's output folder."""
    from nnunetv2.paths import nnUNet_preprocessed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    folder = Path(nnUNet_preprocessed) / dataset
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # what nnunetv2.run.run_training adds for a new training
    dataset_json = json.loads((folder / "dataset.json").read_text())
    trainer = nnUNetTrainerCPUBudget(
        plans=plans, configuration=configuration, fold="all", dataset_json=dataset_json, device=torch.device("cpu")
    )
    trainer.budget_seconds = budget
    trainer.run_training()
    return Path(trainer.output_folder)


def predict(model: Path, checkpoints: list[str], inputs: list[Path], out: Path) -> None:
    """nnU-Net's default inference (Gaussian-weighted sliding window, mirroring) of ``inputs`` by each
    checkpoint, into ``out/<checkpoint>/<input name>``."""
    from nnunetv2.inference import predict_from_raw_data
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    search = predict_from_raw_data.recursive_find_trainer_class_by_name
    predict_from_raw_data.recursive_find_trainer_class_by_name = lambda name: (  # type: ignore[assignment]
        nnUNetTrainerCPUBudget if name == nnUNetTrainerCPUBudget.__name__ else search(name)
    )
    for checkpoint in checkpoints:
        predictor = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=True,
            perform_everything_on_device=False,
            device=torch.device("cpu"),
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        predictor.initialize_from_trained_model_folder(str(model), use_folds=("all",), checkpoint_name=checkpoint)
        folder = out / Path(checkpoint).stem
        folder.mkdir(parents=True, exist_ok=True)
        truncated = [str(folder / i.name.removesuffix(".nii.gz")) for i in inputs]
        predictor.predict_from_files_sequential([[str(i)] for i in inputs], truncated, save_probabilities=False)


def main() -> None:
    """Command line: ``train`` or ``predict``."""
    missing = [name for name in PATHS if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} before starting (nnU-Net reads them at import)")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("--dataset", required=True)
    training.add_argument("--configuration", default="2d")
    training.add_argument("--budget", type=float, required=True, help="CPU seconds of this process")
    training.add_argument("--seed", type=int, default=0)
    predicting = commands.add_parser("predict")
    predicting.add_argument("--model", type=Path, required=True, help="the trainer's folder above fold_all")
    predicting.add_argument("--checkpoints", nargs="+", required=True)
    predicting.add_argument("--inputs", type=Path, nargs="+", required=True)
    predicting.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    if args.command == "train":
        out = train(args.dataset, args.configuration, args.budget, args.seed)
        print(json.dumps({"output_folder": str(out), "cpu_s": round(cpu_seconds(), 1)}))
    else:
        predict(args.model, args.checkpoints, args.inputs, args.out)


if __name__ == "__main__":
    main()
