"""One entry point for the benchmark suites: ``python bench/run.py PRESET [args]``.

Each preset is a documented command line of a suite script (the quality suite behind
``bench/RESULTS.md``, the speed suite behind ``bench/SPEED.md``, ``bench/RELIABILITY.md`` and
``bench/GPU.md``). The script runs as a subprocess of this Python with the repository root as its
working directory, so the scripts keep importing each other as they do when run directly; extra
arguments are appended to the preset's own (argparse lets a later option win).

    python bench/run.py --list                  # every preset: description and command
    python bench/run.py quality-smoke --help    # the script's own options
    python bench/run.py speed-e2e --repeats 1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Preset:
    """A named command line: ``script`` (under ``bench/``) with ``args``; ``suite`` groups the list.

    Extra arguments follow ``args``: options override a preset's (the last one wins), and the shell
    scripts take their positional MODE or DEVICE from them.
    """

    suite: str
    description: str
    script: str
    args: tuple[str, ...] = ()

    def command(self, python: str = "python") -> list[str]:
        runner = "bash" if self.script.endswith(".sh") else python
        return [runner, f"bench/{self.script}", *self.args]


def _nnunet_real_ct(budget: int, parallel: int, results: str) -> Preset:
    """The real CT fold A/10->A, nnU-Net v2 against lrc finetune at ``budget`` CPU seconds, seeds 0-2."""
    return Preset(
        "quality",
        f"real CT A/10->A: nnU-Net v2 against lrc finetune at {budget} CPU s, seeds 0-2 (needs the nnU-Net venv)",
        "nnunet_quality.py",
        (
            *("--folds", "A/10->A", "--seeds", "0", "1", "2", "--budget", str(budget)),
            *("--parallel", str(parallel), "--results", f"bench/results/{results}"),
        ),
    )


PRESETS: dict[str, Preset] = {
    # quality: the numbers of bench/RESULTS.md
    "quality-smoke": Preset(
        "quality",
        "synthetic cohort, reduced U-Net, one seed, k = 1: a few minutes on a CPU",
        "quality.py",
        ("--preset", "reduced", "--seeds", "0", "--k", "1", "--tag", "smoke"),
    ),
    "quality-cpu": Preset(
        "quality",
        "synthetic cohort, reduced U-Net, seeds 0-2, k = 1 2 4 (RESULTS.md's synthetic rows)",
        "quality.py",
        ("--preset", "reduced", "--seeds", "0", "1", "2", "--k", "1", "2", "4", "--tag", "spec"),
    ),
    "quality-summary": Preset(
        "quality",
        "tables and plots from bench/results/quality.json",
        "quality.py",
        ("--summary",),
    ),
    "quality-grid": Preset(
        "quality",
        "the GPU plan: every arm and seed in parallel workers within a deadline",
        "quality_grid.py",
        ("--preset", "full", "--device", "cuda"),
    ),
    "ablation": Preset(
        "quality",
        "real CT, LRC against MoCo and scratch (arms, folds, seeds and length as options)",
        "ablation.py",
    ),
    "lr-control-real": Preset(
        "quality",
        "real CT, scratch and default at one fine-tuning length (set --finetune-steps and --out)",
        "ablation.py",
        ("--arms", "scratch", "default", "--folds", "A/10->A", "--seeds", "5", "6", "7", "8", "9", "--tile", "patch"),
    ),
    "lr-control": Preset(
        "quality",
        "RESULTS.md's learning-rate control: table and plot from the lr_control result files",
        "lr_control.py",
        (
            "--real",
            "bench/results/lr_control_ft250.json",
            "bench/results/lr_control_ft500.json",
            "bench/results/lr_control_ft1000.json",
            "bench/results/lr_control_ft2000.json",
            "--synthetic",
            "bench/results/lr_control_syn500_tiles.json",
            "--plot",
            "bench/results/lr_control_curve.png",
        ),
    ),
    "inference-fov": Preset(
        "quality",
        "score quality.py's fine-tuned models by tiles of their patch (lr-control's synthetic input)",
        "inference_fov.py",
    ),
    "tiles-real": Preset(
        "quality",
        "real CT: tiled against whole-slice inference of the same models",
        "tiles_real.py",
    ),
    "nnunet-cpu": _nnunet_real_ct(180, parallel=3, results="nnunet_vs_lrc_realct.json"),
    "nnunet-cpu-600": _nnunet_real_ct(600, parallel=1, results="nnunet_vs_lrc_realct_600s.json"),
    "nnunet-summary": Preset(
        "quality",
        "the nnU-Net comparison's table and plot from both folds' result files",
        "nnunet_quality.py",
        (
            "--summary",
            "--results",
            "bench/results/nnunet_vs_lrc_realct.json",
            "--also",
            "bench/results/nnunet_vs_lrc_realct_atoc.json",
        ),
    ),
    "make-cohort": Preset(
        "quality",
        "write a synthetic cohort to disk with its manifest",
        "make_cohort.py",
        ("--out", "bench/out/cohort", "--seeds", "0-39", "--test", "10", "--validation", "5"),
    ),
    # speed: the numbers of bench/SPEED.md, RELIABILITY.md, LEARNING_CORE.md, READ_SERIES.md
    "speed-e2e": Preset("speed", "lrc segment end to end, by stage", "speed_e2e.py"),
    "speed-nnunet": Preset(
        "speed", "nnU-Net v2 inference on the same volume (needs the bench extra)", "speed_peers.py", ("nnunet",)
    ),
    "speed-ingest": Preset(
        "speed", "DICOM series ingest against peer readers", "speed_peers.py", ("ingest", "--repeats", "7")
    ),
    "speed-api-load": Preset("speed", "lrc serve under concurrent requests", "speed_api.py", ("load",)),
    "speed-api": Preset(
        "speed", "lrc serve: upload -> SEG ready, a batch of two", "speed_api.py", ("e2e", "--batch", "2")
    ),
    "speed-jobs": Preset(
        "speed", "segment + export jobs on two trees (set --before and --after)", "speed_jobs.py", ("--rounds", "4")
    ),
    "speed-ab": Preset(
        "speed", "predictor A/B on one tree (set --before)", "speed_ab.py", ("--slices", "300", "--rounds", "3")
    ),
    "speed-report": Preset("speed", "SPEED.md's plots and tables from the result files", "speed_report.py"),
    "seg-write": Preset("speed", "DICOM SEG and RTSTRUCT writing by version and kind", "seg_write.py"),
    "seg-write-first": Preset("speed", "a worker's first SEG", "seg_write.py", ("--first", "--rounds", "5")),
    "read-series": Preset("speed", "DICOM series readers compared (READ_SERIES.md)", "read_series.py"),
    "step-time": Preset(
        "speed",
        "pre-training step time (LEARNING_CORE.md)",
        "step_time.py",
        ("--device", "cpu", "--batch", "8", "--size", "128"),
    ),
    "api-memory": Preset(
        "speed", "the API's peak memory by upload size (RELIABILITY.md)", "api_memory.py", ("--label", "after")
    ),
    "cancel-idle": Preset("speed", "a cancelled job's worker goes idle (RELIABILITY.md)", "cancel_idle.py"),
    "make-series": Preset("speed", "write a synthetic DICOM series for the speed scripts", "make_series.py"),
    # gpu: bench/GPU.md, run on a lent GPU machine
    "gpu-check": Preset("gpu", "bf16 against float32 and step times on a GPU", "gpu_check.py"),
    "gpu": Preset("gpu", "one lent GPU session: MODE check (default), quality, e2e or api (GPU.md)", "gpu_session.sh"),
    "speed-gpu": Preset("gpu", "lrc segment and nnU-Net on one device: DEVICE cuda (default) or cpu", "speed_gpu.sh"),
}


def listing() -> str:
    """Every preset, grouped by suite: name, description, command."""
    lines: list[str] = []
    for suite in dict.fromkeys(p.suite for p in PRESETS.values()):
        lines.append(f"{suite}:")
        for name, preset in PRESETS.items():
            if preset.suite == suite:
                lines.append(f"  {name:16} {preset.description}")
                lines.append(f"  {'':16} $ {' '.join(preset.command())}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a benchmark preset; arguments after PRESET go to its script.",
        epilog="python bench/run.py --list shows every preset.",
    )
    parser.add_argument("--list", action="store_true", help="print every preset and its command")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("preset", nargs="?", choices=sorted(PRESETS), metavar="PRESET")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed through to the script")
    opts = parser.parse_args(argv)
    if opts.list:
        sys.stdout.write(listing() + "\n")
        return 0
    if opts.preset is None:
        parser.error("a PRESET or --list")
    command = [*PRESETS[opts.preset].command(sys.executable), *opts.args]
    if opts.dry_run:
        sys.stdout.write(" ".join(command) + "\n")
        return 0
    return subprocess.call(command, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
