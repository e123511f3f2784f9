"""Run a grid of ``bench/quality.py`` cells side by side within a deadline (one GPU shared by several processes).

The models of the quality benchmark are small: one process leaves most of an H100/H200 idle, so
the grid runs ``--workers`` processes at once. Cells start in the plan's priority order (each cell
is one recipe, method and seed, fine-tuned for every ``--k``); no cell starts when the deadline
would cut it, cells still running at the deadline are stopped, and every finished run (saved per
k by ``quality.py``) is merged into one results file.

    python bench/quality_grid.py --preset full --device cuda --workers 9 --deadline 420 \\
        --results $OUT/quality_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from quality import WORK, summarize

HERE = Path(__file__).resolve().parent

# REPORT.md's best recipe: weak views, MoCo momentum 0.99, LRC negative margin 0.05, Felzenszwalb scale 200.
RECIPE = ["--intensity", "weak", "--momentum", "0.99", "--negative-margin", "0.05", "--sp-scale", "200"]

# (tag, method, recipe flags), most important first. "weak": no intensity change between the views
# (CT numbers are calibrated); "indep-weak": also one geometric transform per view.
PLANS: dict[str, list[tuple[str, str, list[str]]]] = {
    "gpu": [
        ("scratch", "scratch", []),
        ("spec", "moco+lrc", []),
        ("weak", "moco+lrc", ["--intensity", "weak"]),
        ("spec", "lrc", []),
        ("spec", "moco", []),
        ("weak", "lrc", ["--intensity", "weak"]),
        ("indep-weak", "moco+lrc", ["--independent", "--intensity", "weak"]),
    ],
    # The CPU sessions' best recipe at the GPU's size: pre-trained layers fine-tuned at 3x the rate
    # (the product's default), not mirrored; tags as the CPU runs' rows.
    "gpu3x": [
        ("scratch-noflip", "scratch", []),
        ("weak-ftnoflip-combined", "moco+lrc", [*RECIPE, "--backbone-lr-factor", "3"]),
        ("weak-ftnoflip-lr3", "moco+lrc", ["--intensity", "weak", "--backbone-lr-factor", "3"]),
    ],
    # The 2D-vs-3D row (~10 hours on 2 CPU cores, REPORT.md): the same two
    # arms on blocks of 32 slices; scratch's tag gets "-3d" from quality.py.
    "gpu3d": [
        ("scratch-noflip", "scratch", ["--dims", "3"]),
        ("weak-ftnoflip-combined-3d", "moco+lrc", [*RECIPE, "--backbone-lr-factor", "3", "--dims", "3"]),
    ],
}


@dataclass
class Cell:
    """One ``quality.py`` process: a recipe and method for one seed, every k."""

    tag: str
    method: str
    flags: list[str]
    seed: int
    results: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.tag}-{self.method.replace('+', '_')}-s{self.seed}"


def command(cell: Cell, args: argparse.Namespace) -> list[str]:
    """The ``quality.py`` command line of one cell."""
    line = [sys.executable, str(HERE / "quality.py"), "--preset", args.preset, "--device", args.device]
    line += ["--methods", cell.method, "--seeds", str(cell.seed), "--k", *map(str, args.k)]
    line += ["--test", *args.test, "--tag", cell.tag, "--results", str(cell.results), "--no-plot", *cell.flags]
    if args.finetune_steps:
        line += ["--finetune-steps", str(args.finetune_steps)]
    if args.pretrain_steps:
        line += ["--pretrain-steps", str(args.pretrain_steps)]
    return line


def run_grid(cells: list[Cell], args: argparse.Namespace) -> None:
    """Start cells in order, ``args.workers`` at a time, and stop everything at the deadline."""
    started = time.monotonic()
    pending, running = list(cells), list[Cell]()
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    while pending or running:
        elapsed = time.monotonic() - started
        for cell in [c for c in running if c.process and c.process.poll() is not None]:
            cell.seconds = time.monotonic() - cell.started
            running.remove(cell)
            assert cell.process is not None
            rc = cell.process.returncode
            print(f"[{elapsed:6.0f} s] done {cell.name} rc={rc} in {cell.seconds:.0f} s", flush=True)
        if elapsed > args.deadline:
            for cell in running:
                assert cell.process is not None
                cell.process.send_signal(signal.SIGTERM)
                print(f"[{elapsed:6.0f} s] deadline: stopped {cell.name}", flush=True)
            for cell in running:
                assert cell.process is not None
                cell.process.wait(timeout=30)
            return
        while pending and len(running) < args.workers:
            cell = pending[0]
            if elapsed + expected(cell, cells) > args.deadline:
                pending.pop(0)  # it would be cut; a cheaper cell further down may still fit
                print(f"[{elapsed:6.0f} s] skipped {cell.name}: would not finish by the deadline", flush=True)
                continue
            pending.pop(0)
            log = (args.work / f"{cell.name}.log").open("wb")
            cell.process = subprocess.Popen(command(cell, args), stdout=log, stderr=subprocess.STDOUT, env=environment)
            cell.started = time.monotonic()
            running.append(cell)
            print(f"[{elapsed:6.0f} s] started {cell.name}", flush=True)
        time.sleep(1.0)


def expected(cell: Cell, cells: list[Cell]) -> float:
    """Seconds a cell should take: the longest finished cell of the same kind (0 while none has finished)."""
    scratch = cell.method == "scratch"
    times = [c.seconds for c in cells if c.seconds is not None and (c.method == "scratch") == scratch]
    return max(times, default=0.0)


def merge(cells: list[Cell], path: Path) -> list[dict[str, object]]:
    """Every finished run of every cell in one results file (the first file's machine block)."""
    machine, runs = None, []
    for cell in cells:
        if cell.results.exists():
            data = json.loads(cell.results.read_text())
            machine = machine or data["machine"]
            runs += data["runs"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    return runs


def overlays(cells: list[Cell], seed: int, k: int, test: int, path: Path, device: str) -> None:
    """One axial slice of test phantom ``test``: the truth and each method's prediction (k, seed fixed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from quality import phantom

    from lrc.infer import Predictor
    from lrc.synthetic import ORGANS

    image, truth = phantom(test)
    z = int(np.argmax((truth.array == min(ORGANS)).sum(axis=(0, 1))))  # the slice with the most liver
    shown = [("truth", truth.array)]
    for cell in cells:
        model = WORK / f"ft-{cell.tag}-{cell.method}-k{k}-s{seed}"
        finished = cell.process is not None and cell.process.returncode == 0  # not a model left by an earlier grid
        if cell.seed == seed and finished and (model / "model.json").exists():
            shown.append((f"{cell.tag} {cell.method}", Predictor.from_dir(model, device=device).predict(image).array))
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 2.9), squeeze=False)
    windowed = np.clip((image.array[:, :, z].T + 160) / 400, 0, 1)  # soft-tissue window, L 40 W 400
    for axis, (title, labels) in zip(axes[0], shown, strict=True):
        axis.imshow(windowed, cmap="gray", origin="lower")
        axis.imshow(np.ma.masked_equal(labels[:, :, z].T, 0), cmap="tab10", vmin=1, vmax=10, alpha=0.5, origin="lower")
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    fig.suptitle(f"test phantom {test}, k = {k}, seed {seed}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="gpu")
    parser.add_argument("--preset", default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--test", nargs="+", default=["dev", "final"])
    parser.add_argument("--finetune-steps", type=int, default=None)
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--workers", type=int, default=9, help="Processes at once.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process.")
    parser.add_argument("--warm", type=int, default=8, help="Processes that fill the super-pixel cache first.")
    parser.add_argument("--deadline", type=float, default=420.0, help="Seconds; no cell runs past it.")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--overlay", type=Path, default=None, help="PNG of predictions on a dev test phantom.")
    args = parser.parse_args()
    args.work = WORK / "grid"
    args.work.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    if args.warm:  # every pre-training process would otherwise compute the same super-pixels
        warm = [sys.executable, str(HERE / "quality.py"), "--preset", args.preset, "--warm", str(args.warm)]
        subprocess.run(warm, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        print(f"super-pixel cache filled in {time.monotonic() - started:.0f} s", flush=True)
    args.deadline -= time.monotonic() - started
    cells = [
        Cell(tag, method, flags, seed, args.work / f"{tag}-{method.replace('+', '_')}-s{seed}.json")
        for tag, method, flags in PLANS[args.plan]
        for seed in args.seeds
    ]
    for cell in cells:
        cell.results.unlink(missing_ok=True)
    run_grid(cells, args)
    runs = merge(cells, args.results)
    for test in args.test:
        print(summarize(runs, test))
    if args.overlay:
        overlays(cells, args.seeds[0], args.k[0], 2000, args.overlay, args.device)
    for cell in cells:
        if cell.process is not None and cell.process.returncode not in (0, -signal.SIGTERM):
            tail = (args.work / f"{cell.name}.log").read_text(errors="replace")[-1500:]
            print(f"--- {cell.name} failed (rc={cell.process.returncode}):\n{tail}", flush=True)


if __name__ == "__main__":
    main()
