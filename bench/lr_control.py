"""The learning-rate control: is pre-training's gain at short fine-tunings the 3x rate of its layers?

Three arms at each fine-tuning length, paired by seed, every model scored by tiles of its patch:

* ``scratch 1x``: scratch at its own rate (the product's default from scratch);
* ``scratch 3x``: scratch with the layers a base would give at 3x the rate (``--scratch-lr-factor 3``),
  the rate the pre-trained arm's layers get;
* ``pre-trained 3x``: fine-tuned from MoCo+LRC weights at 3x (the product's default from a
  self-supervised model).

Real CT: ``bench/ablation.py`` runs (fold ``A/10->A``, arms ``scratch`` and ``default``); synthetic
cohort: ``bench/inference_fov.py`` scores of ``bench/quality.py`` models (the recipe
``weak-ftnoflip-combined-ft*``). The runs that fill the tables (one file per length)::

    python bench/ablation.py --arms scratch default --folds "A/10->A" --seeds 5 6 7 8 9 --tile patch \\
        --finetune-steps N --out bench/results/lr_control_ftN.json      # then --arms scratch --scratch-lr-factor 3
    python bench/quality.py --preset reduced --test dev final --seeds 0 1 2 --k 1 2 --finetune-steps N \\
        --results bench/results/lr_control_synN.json --methods scratch   # and --scratch-lr-factor 3; and the recipe:
        # --methods moco+lrc --intensity weak --momentum 0.99 --negative-margin 0.05 --sp-scale 200 \\
        # --backbone-lr-factor 3 --tag weak-ftnoflip-combined-ftN
    cd bench && python inference_fov.py --tags scratch-noflip scratch-noflip-bb3 weak-ftnoflip-combined-ftN \\
        --results results/lr_control_synN_tiles.json                     # before the next N (same model folders)

The tables and the plot::

    python bench/lr_control.py --real bench/results/lr_control_ft*.json \\
        --synthetic bench/results/lr_control_syn*_tiles.json --plot bench/results/lr_control_curve.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from quality import confidence

ARMS = ("scratch 1x", "scratch 3x", "pre-trained 3x")
GAPS = (("pre-trained 3x", "scratch 1x"), ("scratch 3x", "scratch 1x"), ("pre-trained 3x", "scratch 3x"))
Cell = tuple[str, int]  # (panel, fine-tuning steps)


def _arm(method: str, factor: float) -> str:
    """The arm of a run from its method (``scratch`` or a pre-training) and its rate factor."""
    if method == "scratch":
        return f"scratch {factor:g}x"
    return f"pre-trained {factor:g}x"


def real_runs(paths: list[Path]) -> dict[tuple[str, str, int], dict[int, float]]:
    """``{(panel, arm, steps): {seed: mean Dice}}`` of ``ablation.py`` files, fold ``A/10->A`` by tiles."""
    found: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for path in paths:
        data = json.loads(path.read_text())
        for run in data["runs"]:
            steps = run.get("finetune_steps", data["config"]["finetune_steps"])
            if run["fold"] != "A/10->A" or run.get("tile", "slice") == "slice":
                continue
            method = "scratch" if run["arm"] == "scratch" else run["arm"]
            found[("real CT A/10->A", _arm(method, run.get("backbone_lr_factor", 1.0)), steps)][run["seed"]] = run[
                "mean_dice"
            ]
    return found


def synthetic_runs(paths: list[Path]) -> dict[tuple[str, str, int], dict[int, float]]:
    """``{(panel, arm, steps): {seed: mean Dice}}`` of ``inference_fov.py`` files, by tiles, test volumes."""
    found: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            if run["mode"] != "tiles" or run["set"] not in ("dev", "final"):
                continue
            tuned = run["finetune"]
            panel = f"synthetic k={run['k']} {run['set']}"
            found[(panel, _arm(run["method"], tuned["backbone_lr_factor"]), tuned["steps"])][run["seed"]] = run[
                "mean_dice"
            ]
    return found


def _gap(a: dict[int, float], b: dict[int, float]) -> str:
    """Paired gap ``a - b`` over the seeds both ran: mean, 95% interval (3+ seeds), seeds ahead."""
    gaps = [a[s] - b[s] for s in sorted(a) if s in b]
    if not gaps:
        return ""
    mean, half = confidence(gaps)
    interval = f" [{mean - half:+.3f}, {mean + half:+.3f}]" if len(gaps) >= 3 else ""
    return f"{mean:+.3f}{interval} ({sum(g > 0 for g in gaps)}/{len(gaps)})"


def _cell(values: dict[int, float]) -> str:
    """Mean +- sd over seeds, and how many."""
    if not values:
        return ""
    seeds = list(values.values())
    spread = f" +- {statistics.stdev(seeds):.3f}" if len(seeds) > 1 else ""
    return f"{statistics.mean(seeds):.3f}{spread} (n={len(seeds)})"


def table(found: dict[tuple[str, str, int], dict[int, float]]) -> str:
    """One markdown table: a row per (panel, steps), the three arms and their three paired gaps."""
    header = ["data", "steps", *ARMS, *(f"{a} - {b}" for a, b in GAPS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for panel, steps in sorted({(p, n) for p, _, n in found}):
        arms = {arm: found.get((panel, arm, steps), {}) for arm in ARMS}
        cells = [_cell(arms[arm]) for arm in ARMS] + [_gap(arms[a], arms[b]) for a, b in GAPS]
        lines.append(f"| {panel} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(found: dict[tuple[str, str, int], dict[int, float]], path: Path) -> None:
    """Mean Dice against fine-tuning steps per panel: each arm's seeds as dots, a line through the means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({p for p, _, _ in found})
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.4 * rows), squeeze=False)
    axes = [axis for row in grid for axis in row]
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    for axis, panel in zip(axes, panels, strict=False):
        for offset, arm in zip((-0.04, 0.0, 0.04), ARMS, strict=True):
            points = sorted((n, v) for (p, a, n), v in found.items() if p == panel and a == arm)
            if not points:
                continue
            means = [statistics.mean(v.values()) for _, v in points]
            shown = [n * 2**offset for n, _ in points]  # dodge the arms on the log axis
            (line,) = axis.plot(shown, means, marker="_", label=arm)
            for x, (_, seeds) in zip(shown, points, strict=True):
                axis.scatter([x] * len(seeds), list(seeds.values()), s=10, color=line.get_color(), alpha=0.6)
        axis.set(xscale="log", title=panel, xlabel="fine-tuning steps", ylabel="mean Dice (tiles)")
        axis.set_xticks([250, 500, 1000, 2000], ["250", "500", "1000", "2000"])
        axis.minorticks_off()
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Print the real-CT and synthetic tables; draw the plot when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="ablation.py result files.")
    parser.add_argument("--synthetic", type=Path, nargs="*", default=[], help="inference_fov.py result files.")
    parser.add_argument("--plot", type=Path, help="PNG of Dice against fine-tuning steps.")
    args = parser.parse_args()
    found: dict[Any, dict[int, float]] = {**real_runs(args.real), **synthetic_runs(args.synthetic)}
    print(table(found))
    if args.plot:
        plot(found, args.plot)


if __name__ == "__main__":
    main()
