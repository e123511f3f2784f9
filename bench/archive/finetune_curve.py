"""Dice against fine-tuning length on the synthetic cohort: scratch and the best recipe, paired by seed.

Reads ``inference_fov.py`` results (the models of ``quality.py`` scored by tiles of their patch) of
runs that differ only in ``--finetune-steps``, keys every run by its recorded fine-tuning length, and
prints, per length, k and test set, both arms' mean Dice and the paired gap (95% interval, seeds
ahead); draws Dice against steps per k and test set.

    python bench/archive/finetune_curve.py --files bench/results/quality_synth_recipe_ft250_tiles.json \\
        bench/results/quality_synth_recipe_ft500_tiles.json bench/results/quality_synth_combined_scale_tiles.json \\
        bench/results/quality_synth_recipe_ft2000_tiles.json bench/results/quality_synth_scratch_ft2000_tiles.json \\
        --recipe weak-ftnoflip-combined weak-ftnoflip-combined-ft250 weak-ftnoflip-combined-ft500 \\
        weak-ftnoflip-combined-ft2000 --plot bench/archive/results/finetune_curve_synth.png
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/: quality.py's helpers

from quality import _panels, confidence

SETS = ("dev", "final")


def collect(files: list[Path], recipe: set[str], scratch: str) -> dict[tuple[str, int, int, str], dict[int, float]]:
    """(arm, steps, k, test set) -> seed -> mean Dice by tiles."""
    table: dict[tuple[str, int, int, str], dict[int, float]] = defaultdict(dict)
    for path in files:
        for run in json.loads(path.read_text())["runs"]:
            arm = "scratch" if run["tag"] == scratch else "recipe" if run["tag"] in recipe else None
            if arm is None or run["mode"] != "tiles" or run["set"] not in SETS:
                continue
            key = (arm, int(run["finetune"]["steps"]), int(run["k"]), run["set"])
            table[key][int(run["seed"])] = float(run["mean_dice"])
    return table


def rows(table: dict[tuple[str, int, int, str], dict[int, float]]) -> list[dict[str, Any]]:
    """One row per (steps, k, set) where both arms ran: means and the paired gap."""
    out = []
    for steps, k, test in sorted({key[1:] for key in table}):
        scratch, recipe = table.get(("scratch", steps, k, test), {}), table.get(("recipe", steps, k, test), {})
        seeds = sorted(set(scratch) & set(recipe))
        if not seeds:
            continue
        gaps = [recipe[s] - scratch[s] for s in seeds]
        mean, half = confidence(gaps)
        out.append(
            {
                "steps": steps,
                "k": k,
                "set": test,
                "seeds": seeds,
                "scratch": statistics.mean(scratch[s] for s in seeds),
                "recipe": statistics.mean(recipe[s] for s in seeds),
                "gap": mean,
                "half": half,
                "ahead": sum(g > 0 for g in gaps),
            }
        )
    return out


def plot(table: dict[tuple[str, int, int, str], dict[int, float]], path: Path) -> None:
    ks = sorted({key[2] for key in table})
    fig, axes = _panels(len(ks) * len(SETS))
    for axis, (k, test) in zip(axes, [(k, s) for k in ks for s in SETS], strict=True):
        for arm, colour in (("scratch", "tab:gray"), ("recipe", "tab:blue")):
            points = sorted((key[1], seeds) for key, seeds in table.items() if key[0] == arm and key[2:] == (k, test))
            if not points:
                continue
            steps = [p[0] for p in points]
            axis.plot(steps, [statistics.mean(p[1].values()) for p in points], "o-", color=colour, label=arm)
            for step, seeds in points:
                axis.scatter([step] * len(seeds), list(seeds.values()), s=8, color=colour, alpha=0.4)
        axis.set_xscale("log")
        axis.minorticks_off()
        axis.set_xticks(sorted({key[1] for key in table}), [str(s) for s in sorted({key[1] for key in table})])
        axis.set_title(f"k = {k}, {test} volumes (tiles)", fontsize=9)
        axis.set_xlabel("fine-tuning steps")
        axis.set_ylabel("mean Dice")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, nargs="+", required=True)
    parser.add_argument("--recipe", nargs="+", required=True, help="Tags of the recipe's runs (any length).")
    parser.add_argument("--scratch", default="scratch-noflip")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    table = collect(args.files, set(args.recipe), args.scratch)
    print("| steps | k | set | scratch | recipe | recipe - scratch [95% CI] (seeds ahead) |")
    print("|---|---|---|---|---|---|")
    for row in rows(table):
        low, high = row["gap"] - row["half"], row["gap"] + row["half"]
        interval = "" if math.isnan(row["half"]) else f" [{low:+.3f}, {high:+.3f}]"
        print(
            f"| {row['steps']} | {row['k']} | {row['set']} | {row['scratch']:.3f} | {row['recipe']:.3f} | "
            f"{row['gap']:+.3f}{interval} ({row['ahead']}/{len(row['seeds'])}) |"
        )
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
