"""Whole slices or patch-sized tiles: how the field of view at inference changes a fine-tuned model's Dice.

Fine-tuning sees ``patch x patch`` crops; :class:`lrc.infer.Predictor` runs whole slices unless
given ``tile``. This scores the models that ``bench/quality.py`` left in ``bench/out/quality``
(``ft-{tag}-{method}-k{k}-s{seed}``) both ways, on their own training volumes and on the dev and
final test volumes, with the metric of ``quality.py``, and pairs each arm with scratch per seed.

    python bench/quality.py ... --tag weak-ftnoflip-combined ...     # leaves the fine-tuned models
    python bench/inference_fov.py --tags scratch-noflip weak-ftnoflip-combined --results R.json
    python bench/inference_fov.py --summary --results R.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

from quality import PRESETS, TEST_SEEDS, WORK, _paired_gap, _panels, confidence, phantom, save

NAME = re.compile(r"ft-(?P<tag>.+)-(?P<method>scratch|moco\+lrc|moco|lrc|supervised\+lrc)-k(?P<k>\d+)-s(?P<seed>\d+)$")
MODES = ("whole", "tiles")


def score(model: Path, preset: dict[str, Any], tests: list[str], device: str = "cpu") -> list[dict[str, Any]]:
    """Mean Dice of one fine-tuned model, whole slices and tiles, on its training and test volumes."""
    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.label_match import match_labels
    from lrc.model_dirs.store import read_card
    from lrc.synthetic import label_table

    found = NAME.match(model.name)
    assert found is not None
    k, seed = int(found["k"]), int(found["seed"])
    sets = {"train": [phantom(100 + 10 * seed + i) for i in range(k)]}
    sets |= {test: [phantom(TEST_SEEDS[test] + i) for i in range(preset["tests"])] for test in tests}
    training = read_card(model).training  # the directory is rewritten by any later run of the same tag
    records = []
    for mode in MODES:
        tile = int(training["patch"][0]) if mode == "tiles" else None
        predictor = Predictor.from_dir(model, device=device, tile=tile)
        assert predictor.card.labels is not None
        organs = match_labels(predictor.card.labels, label_table())
        for name, cases in sets.items():
            dice = [mean_dice(evaluate(predictor.predict(i), lab, organs, distances=False)) or 0.0 for i, lab in cases]
            records.append(
                {
                    "tag": found["tag"],
                    "method": found["method"],
                    "k": k,
                    "seed": seed,
                    "mode": mode,
                    "tile": tile,
                    "set": name,
                    "mean_dice": statistics.mean(dice),
                    "finetune": training["config"],
                }
            )
    return records


def summarize(runs: list[dict[str, Any]], scratch: str) -> str:
    """Markdown: mean Dice per arm, volumes and inference, and paired gaps (per seed) to ``scratch``
    on whole slices and to ``scratch`` with the same inference."""
    scratches = [r for r in runs if r["tag"] == scratch]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["tag"], r["method"], r["k"], r["set"], r["mode"]), []).append(r)
    lines = [
        f"| arm | k | volumes | inference | mean Dice | vs {scratch}, whole slices | vs {scratch}, same inference "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (tag, method, k, name, mode), group in sorted(groups.items()):
        values = {g["seed"]: g["mean_dice"] for g in group}
        gaps = [
            _paired_gap(group, [r for r in scratches if (r["k"], r["set"], r["mode"]) == (k, name, against)])
            for against in ("whole", mode)
        ]
        if tag == scratch:
            gaps = [gaps[0], ""]
        shown = ", ".join(f"{values[s]:.3f}" for s in sorted(values))
        mean = statistics.mean(values.values())
        lines.append(f"| {tag} ({method}) | {k} | {name} | {mode} | {mean:.3f} | {gaps[0]} | {gaps[1]} | {shown} |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Mean Dice per arm on whole slices and on tiles: one panel per test set and k."""
    panels = sorted({(r["set"], r["k"]) for r in runs if r["set"] != "train"})
    tags = sorted({r["tag"] for r in runs})
    fig, axes = _panels(len(panels))
    top = max(r["mean_dice"] for r in runs if r["set"] != "train")
    for axis, (name, k) in zip(axes, panels, strict=True):
        for offset, (mode, colour) in enumerate((("whole", "#999"), ("tiles", "#2a7"))):
            means = [
                statistics.mean([r["mean_dice"] for r in runs if (r["tag"], r["set"], r["k"], r["mode"]) == key] or [0])
                for key in ((tag, name, k, mode) for tag in tags)
            ]
            axis.barh([i + 0.4 * offset for i in range(len(tags))], means, height=0.4, color=colour, label=mode)
        axis.set_yticks([i + 0.2 for i in range(len(tags))], tags, fontsize=7)
        axis.set_xlim(0.4, max(0.7, min(1.0, top + 0.02)))
        axis.set_title(f"{name}, k = {k}")
        axis.set_xlabel(f"mean Dice ({len({r['seed'] for r in runs})} seeds)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_gaps(runs: list[dict[str, Any]], scratch: str, path: Path, target: float = 0.03) -> None:
    """Per-seed gaps to ``scratch`` by tiles (dots), their mean and 95% confidence interval (bar), one
    panel per test set and k, with the issue's target as a dashed line."""
    panels = sorted({(r["set"], r["k"]) for r in runs if r["set"] != "train"})
    tags = sorted({r["tag"] for r in runs} - {scratch})
    fig, axes = _panels(len(panels))
    for axis, (name, k) in zip(axes, panels, strict=True):

        def tiled(tag: str) -> dict[int, float]:
            cell = (tag, name, k, "tiles")  # noqa: B023 - used at once, inside this panel
            return {r["seed"]: r["mean_dice"] for r in runs if (r["tag"], r["set"], r["k"], r["mode"]) == cell}

        reference = tiled(scratch)
        for row, tag in enumerate(tags):
            gaps = [dice - reference[seed] for seed, dice in sorted(tiled(tag).items()) if seed in reference]
            if len(gaps) < 2:
                continue
            mean, half = confidence(gaps)
            axis.scatter(gaps, [row] * len(gaps), color="#2a7", s=14, alpha=0.7)
            axis.errorbar([mean], [row], xerr=[half], color="black", capsize=4, marker="|", markersize=14)
            axis.annotate(f"n={len(gaps)}", (mean, row + 0.2), fontsize=7, ha="center")
        axis.axvline(0, color="#999", linewidth=1)
        axis.axvline(target, color="#c0392b", linestyle="--", linewidth=1)
        axis.set_yticks(range(len(tags)), tags, fontsize=7)
        axis.set_ylim(-0.6, len(tags) - 0.4)
        axis.set_title(f"{name}, k = {k} (tiles; dashed: target)", fontsize=9)
        axis.set_xlabel(f"Dice gap to {scratch} (dots: seeds, bar: 95% CI)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", nargs="+", default=[], help="Arms (quality.py tags) whose models to score.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    parser.add_argument("--test", nargs="+", choices=sorted(TEST_SEEDS), default=["dev", "final"])
    parser.add_argument("--scratch", default="scratch-noflip", help="The arm the others are paired with.")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="Only print the table (and draw the plot).")
    parser.add_argument("--no-plot", action="store_true", help="Skip the PNG.")
    parser.add_argument("--device", default="cpu", help="Where the models predict (cpu, cuda).")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = json.loads(args.results.read_text())["runs"] if args.results.exists() else []
    if not args.summary:
        done = {(r["tag"], r["method"], r["k"], r["seed"]) for r in runs}
        for model in sorted(WORK.glob("ft-*")):
            found = NAME.match(model.name)
            if found is None or found["tag"] not in args.tags:
                continue
            if (found["tag"], found["method"], int(found["k"]), int(found["seed"])) in done:
                continue
            runs.extend(score(model, PRESETS[args.preset], args.test, args.device))
            save(runs, args.results)
            print(model.name, flush=True)
    print(summarize(runs, args.scratch))
    if not args.no_plot:
        plot(runs, args.results.with_suffix(".png"))
        plot_gaps(runs, args.scratch, args.results.with_name(args.results.stem + "_gaps.png"))


if __name__ == "__main__":
    main()
