"""Tables and a plot of ``bench/nnunet_quality.py``'s runs: nnU-Net v2 against ``lrc finetune`` per fold and budget."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

NNUNET, OURS = "nnunet-2d", "lrc-scratch"


def _spread(values: list[float]) -> str:
    """``mean +- sd (n=N)``."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {sd:.3f} (n={len(values)})"


def _final(run: dict[str, Any]) -> dict[str, Any]:
    return dict(run["snapshots"][-1])


def paired(runs: list[dict[str, Any]], fold: str, budget: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(nnU-Net run, lrc run) of each seed both ran in ``fold`` at ``budget``, in seed order."""
    by = {(r["arm"], r["seed"]): r for r in runs if r["fold"] == fold and r["budget_cpu_s"] == budget}
    seeds = sorted({seed for arm, seed in by if (NNUNET, seed) in by and (OURS, seed) in by})
    return [(by[(NNUNET, s)], by[(OURS, s)]) for s in seeds]


def summarize(runs: list[dict[str, Any]]) -> str:
    """Markdown: final Dice per arm, the paired gap (nnU-Net - ours) with its 95% interval, per organ, the curve."""
    from quality import confidence

    lines = [
        "| fold | k | budget (CPU s) | nnU-Net 2d | lrc finetune scratch | nnU-Net - lrc (95% CI) |"
        " seeds nnU-Net ahead | nnU-Net train CPU s / wall s | lrc train CPU s / wall s |"
        " nnU-Net epochs x 25 it. | lrc steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells = sorted({(r["fold"], r["budget_cpu_s"]) for r in runs})
    details = []
    for fold, budget in cells:
        pairs = paired(runs, fold, budget)
        if not pairs:
            continue
        theirs = [_final(n)["mean_dice"] for n, _ in pairs]
        ours = [_final(o)["mean_dice"] for _, o in pairs]
        gaps = [t - o for t, o in zip(theirs, ours, strict=True)]
        mean, half = confidence(gaps)
        interval = f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]" if not math.isnan(half) else f"{mean:+.3f}"

        def times(arm_runs: list[dict[str, Any]]) -> str:
            cpu = statistics.mean(_final(r)["train_cpu_s"] for r in arm_runs)
            wall = statistics.mean(_final(r)["train_wall_s"] for r in arm_runs)
            return f"{cpu:.0f} / {wall:.0f}"

        nn_runs, our_runs = [n for n, _ in pairs], [o for _, o in pairs]
        epochs = "/".join(str(n["num_epochs"]) for n in nn_runs)
        steps = "/".join(str(o["steps"]) for o in our_runs)
        lines.append(
            f"| {fold} | {pairs[0][0]['k']} | {budget:g} | {_spread(theirs)} | {_spread(ours)} | {interval} |"
            f" {sum(g > 0 for g in gaps)}/{len(gaps)} | {times(nn_runs)} | {times(our_runs)} | {epochs} | {steps} |"
        )
        details.append(_organs(fold, budget, pairs))
        details.append(_curve(fold, budget, pairs))
    return "\n".join(lines + details)


def _organs(fold: str, budget: float, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """Per organ: mean Dice of each arm, the mean paired gap, mean HD95 (mm) of each arm."""
    organs = list(_final(pairs[0][0])["dice"])
    rows = [
        f"\n{fold}, {budget:g} CPU s, per organ (final checkpoints, mean over seeds):\n",
        "| organ | nnU-Net Dice | lrc Dice | nnU-Net - lrc | nnU-Net HD95 mm | lrc HD95 mm |",
        "|---|---|---|---|---|---|",
    ]
    for organ in organs:

        def values(side: int, metric: str, organ: str = organ) -> list[float]:
            found = [_final(pair[side])[metric].get(organ) for pair in pairs]
            return [v for v in found if v is not None]

        dice_n, dice_o = values(0, "dice"), values(1, "dice")
        gap = statistics.mean(n - o for n, o in zip(dice_n, dice_o, strict=False)) if dice_n and dice_o else math.nan
        hd = [values(0, "hd95"), values(1, "hd95")]
        shown = [f"{statistics.mean(v):.1f}" if v else "-" for v in hd]
        rows.append(
            f"| {organ} | {statistics.mean(dice_n):.3f} | {statistics.mean(dice_o):.3f} | {gap:+.3f} |"
            f" {shown[0]} | {shown[1]} |"
        )
    return "\n".join(rows)


def _curve(fold: str, budget: float, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """Each arm's snapshots (points of the same runs): mean training CPU seconds and mean Dice over seeds."""
    rows = [
        f"\n{fold}, {budget:g} CPU s, snapshots of the same runs (not runs of a shorter budget):\n",
        "| arm | snapshot | train CPU s | train wall s | mean Dice |",
        "|---|---|---|---|---|",
    ]
    for side, arm in enumerate((NNUNET, OURS)):
        count = min(len(pair[side]["snapshots"]) for pair in pairs)
        for j in range(count):
            points = [pair[side]["snapshots"][j] for pair in pairs]
            cpu = statistics.mean(p["train_cpu_s"] for p in points)
            wall = statistics.mean(p["train_wall_s"] for p in points)
            rows.append(f"| {arm} | {j + 1} | {cpu:.0f} | {wall:.0f} | {_spread([p['mean_dice'] for p in points])} |")
    return "\n".join(rows)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Mean Dice against training CPU seconds, one panel per fold: every snapshot of every run, a line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = sorted({r["fold"] for r in runs})
    fig, axes = plt.subplots(1, len(folds), figsize=(4.5 * len(folds), 3.8), squeeze=False)
    colors = {NNUNET: "tab:red", OURS: "tab:blue"}
    for axis, fold in zip(axes[0], folds, strict=True):
        for run in (r for r in runs if r["fold"] == fold):
            points = run["snapshots"]
            axis.plot(
                [p["train_cpu_s"] for p in points],
                [p["mean_dice"] for p in points],
                color=colors[run["arm"]],
                marker="o",
                markersize=3,
                alpha=0.7,
                label=run["arm"] if run["seed"] == min(r["seed"] for r in runs if r["fold"] == fold) else None,
            )
        axis.set_title(f"{fold} (k = {next(r['k'] for r in runs if r['fold'] == fold)})")
        axis.set_xlabel("training CPU seconds (1 thread)")
        axis.set_ylabel("mean Dice, held-out volumes")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
