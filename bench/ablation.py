"""Research probe: does LRC pre-training beat scratch and MoCo with few labels? (CPU-sized)

Data (all real, `shared/data`): subject A (TotalSegmentator abdominal CT, 3 mm, 112 slices) and
subject C (Siemens CT, 0.98 mm in-plane, 2 mm slices, 20 slices), each with TotalSegmentator's
silver-standard labels. Pre-training uses both CTs' images without labels (a hospital pre-trains on
its own scans, including those it will segment). Fine-tuning uses one labelled volume and is scored
on the other (two folds: A->C and C->A), for 5 organs both label maps hold: liver, spleen, stomach,
aorta, inferior vena cava. No validation-based early stopping (the only other volume is the test
volume): a fixed number of steps, then Dice on the held-out subject.

A third fold, ``A/10->A``, is in-distribution and label-scarce: fine-tune on every 10th slice of A
(11 labelled slices) and score on the slices halfway between them (11 other slices of A).

Arms: scratch; moco; lrc (the specification: one geometric transform for both views);
lrc_indep (independent crops/flips/rotations per view, regions matched by super-pixel id);
moco+lrc_indep; default (what ``lrc pretrain`` does unless told otherwise); combined (the
synthetic cohort's best recipe, docs/research/REPORT.md). Seeds: ``--seeds``
(pre-training and fine-tuning seeded alike). ``--tile patch`` scores by tiles of the fine-tuning
patch instead of whole slices; ``--backbone-lr-factor`` sets the pre-trained layers' rate,
``--scratch-lr-factor`` scratch's rate for the same layers (the learning-rate control).

Usage: ``python bench/ablation.py [--seeds 0 1 2] [--pretrain-steps 300] [--finetune-steps 200]``
Writes ``bench/results/ablation.json`` (every run) and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from speed_env import cpu_name
from tiles_real import subjects

HERE = Path(__file__).resolve().parent
ORGANS = {5: "liver", 1: "spleen", 6: "stomach", 52: "aorta", 63: "inferior_vena_cava"}
FEATURES = (16, 16, 32, 64, 128, 16)
ARMS: dict[str, dict] = {
    "moco": {"method": "moco", "independent": False},
    "lrc": {"method": "lrc", "independent": False},
    "lrc_indep": {"method": "lrc", "independent": True},
    "moco+lrc_indep": {"method": "moco+lrc", "independent": True},
    # what `lrc pretrain` does by default: MoCo+LRC, shared geometry, no intensity change between the views
    "default": {"method": "moco+lrc", "independent": False, "weak": True},
    # docs/research/REPORT.md's best recipe on the synthetic cohort: no intensity change between the views,
    # momentum 0.99, intensity-alike regions no negatives, coarser super-pixels.
    "combined": {
        "method": "moco+lrc",
        "independent": False,
        "weak": True,
        "momentum": 0.99,
        "margin": 0.05,
        "scale": 200,
    },
}


def main() -> None:
    """Run every arm, fold and seed; write all results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--arms", nargs="+", default=["scratch", *ARMS])
    parser.add_argument(
        "--backbone-lr-factor",
        type=float,
        default=None,
        help="Rate of the pre-trained layers [default: the product's, 3 (1 before 2026-12-03's runs)].",
    )
    parser.add_argument(
        "--scratch-lr-factor",
        type=float,
        default=1.0,
        help="Scratch's rate for the layers a pre-trained base gives (3: the pre-trained arms' rate) [1].",
    )
    parser.add_argument("--tile", choices=["slice", "patch"], default="slice", help="Inference: whole slices or tiles.")
    parser.add_argument("--folds", nargs="+", default=["A->C", "C->A"], choices=["A->C", "C->A", "A/10->A"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ablation.json")
    parser.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        help="Run nothing: summarize the runs of these result files together (plot: --out's .png).",
    )
    args = parser.parse_args()
    if args.summarize:
        summarize([r for path in args.summarize for r in _load(path)], args.out.with_suffix(".png"))
        return

    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.io.labels import LabelTable
    from lrc.label_match import match_labels
    from lrc.superpixels import SuperpixelParams
    from lrc.train.finetune import finetune
    from lrc.train.finetune_config import SELF_SUPERVISED_LR_FACTOR, FinetuneConfig
    from lrc.train.pretrain import PretrainConfig, pretrain
    from lrc.view_config import SPEC_INTENSITY, ViewConfig

    subject_a, subject_c = subjects(args.shared_data).values()
    table = LabelTable.from_names(ORGANS)
    work = HERE / "out" / "ablation"
    base = PretrainConfig(
        steps=args.pretrain_steps,
        batch_size=16,
        spacing=3.0,
        canvas=128,
        view_size=96,
        features=FEATURES,
        queue_size=1024,
    )
    runs = _load(args.out) if args.out.exists() else []
    done = {_key(r) for r in runs}
    import torch

    # per run: CPU training reproduces on one processor kind only
    processor = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_name()
    for seed in args.seeds:
        for arm in args.arms:
            init = None
            pretrain_seconds = 0.0
            if arm != "scratch":
                spec = ARMS[arm]
                config = replace(
                    base,
                    method=spec["method"],
                    seed=seed,
                    momentum=spec.get("momentum", base.momentum),
                    negative_margin=spec.get("margin", base.negative_margin),
                    superpixels=SuperpixelParams(scale=spec.get("scale", SuperpixelParams().scale)),
                    views=ViewConfig(
                        independent_geometry=spec["independent"], **({} if spec.get("weak") else SPEC_INTENSITY)
                    ),
                )
                init = work / f"{arm}-s{seed}"
                if not _reusable(init, config.to_json()):
                    started = time.perf_counter()
                    pretrain(
                        [subject_a[0], subject_c[0]], init, config, device="auto", cache_dir=work / "superpixel-cache"
                    )
                    pretrain_seconds = time.perf_counter() - started
            folds = {
                "A->C": (subject_a, subject_c),
                "C->A": (subject_c, subject_a),
                "A/10->A": (every_tenth(subject_a, 0), every_tenth(subject_a, 5)),
            }
            for fold in args.folds:
                train, test = folds[fold]
                factor = args.backbone_lr_factor
                if arm == "scratch":
                    factor = args.scratch_lr_factor  # the same layers' rate without pre-training (a control)
                elif factor is None:
                    factor = SELF_SUPERVISED_LR_FACTOR
                key = (arm, factor, args.tile, args.finetune_steps, fold, seed)
                if key in done:
                    continue
                started = time.perf_counter()
                config = FinetuneConfig(
                    steps=args.finetune_steps,
                    batch_size=8,
                    patch=96,
                    spacing=3.0,
                    canvas=128,
                    features=FEATURES,
                    seed=seed,
                    backbone_lr_factor=factor,
                    tile=args.tile,  # whole slices unless asked (ABLATION.md's first tables)
                )
                model = finetune(
                    [train],
                    table,
                    work / f"ft-{arm}-{fold.replace('->', '').replace('/', '')}-s{seed}",
                    config,
                    validation=[],
                    init=init,
                    device="auto",
                )
                predictor = Predictor.from_dir(model)
                assert predictor.card.labels is not None
                organs = match_labels(predictor.card.labels, LabelTable.from_names(ORGANS))
                scores = evaluate(predictor.predict(test[0]), test[1], organs)
                run = {
                    "arm": arm,
                    "fold": fold,
                    "seed": seed,
                    "backbone_lr_factor": factor,
                    "tile": args.tile,
                    "finetune_steps": args.finetune_steps,
                    "dice": {k: v["dice"] for k, v in scores.items()},
                    "mean_dice": mean_dice(scores),
                    "finetune_seconds": round(time.perf_counter() - started, 1),
                    "pretrain_seconds": round(pretrain_seconds, 1),
                    "processor": processor,
                }
                runs.append(run)
                print(json.dumps(run), flush=True)
                args.out.parent.mkdir(exist_ok=True)
                args.out.write_text(
                    json.dumps(
                        {"config": {"pretrain": base.to_json(), "finetune_steps": args.finetune_steps}, "runs": runs},
                        indent=1,
                    )
                    + "\n"
                )
    summarize(runs, args.out.with_suffix(".png"))


def every_tenth(case: tuple, start: int) -> tuple:
    """Slices ``start, start + 10, ...`` of an (image, label) pair, as volumes 10 slices apart."""
    from lrc.io import Volume
    from lrc.io.geometry import align_to

    image, label = case
    label = align_to(label, image)
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ [0, 0, start] + image.affine[:3, 3]
    affine[:3, 2] *= 10
    return (
        Volume(image.array[:, :, start::10].copy(), affine, image.modality),
        Volume(label.array[:, :, start::10].copy(), affine, label.modality),
    )


def _load(path: Path) -> list[dict]:
    """The runs of a result file, each with its fine-tuning steps (older files hold them once, in the config)."""
    found = json.loads(path.read_text())
    return [{"finetune_steps": found["config"]["finetune_steps"], **run} for run in found["runs"]]


def _arm_key(run: dict) -> tuple:
    """(arm, rate factor, inference, fine-tuning steps); runs before the options were whole slices at 1x."""
    return (run["arm"], run.get("backbone_lr_factor", 1.0), run.get("tile", "slice"), run["finetune_steps"])


def _key(run: dict) -> tuple:
    """What makes a run: its arm key, fold and seed."""
    return (*_arm_key(run), run["fold"], run["seed"])


def _reusable(directory: Path, config: dict) -> bool:
    """True when ``directory`` holds a pre-trained model made with exactly this configuration."""
    card = directory / "model.json"
    if not card.exists():
        return False
    made_with = json.loads(card.read_text())["training"]["config"]
    return bool(made_with == json.loads(json.dumps(config)))


def _paired(runs: list[dict], fold: str, arm_key: tuple, baseline: tuple) -> list[tuple[float, float]]:
    """(arm, baseline) mean Dice of the seeds both ran in ``fold``, in seed order."""

    def by_seed(key: tuple) -> dict[int, float]:
        return {r["seed"]: r["mean_dice"] for r in runs if r["fold"] == fold and _arm_key(r) == key}

    ours, theirs = by_seed(arm_key), by_seed(baseline)
    return [(ours[seed], theirs[seed]) for seed in sorted(ours.keys() & theirs.keys())]


def summarize(runs: list[dict], plot_path: Path | None = None) -> None:
    """Mean and spread of mean Dice per arm (with its rate and inference) and fold; a plot of every run
    when ``plot_path`` is given (per fold: Dice against fine-tuning steps, one colour per arm, line through
    the means)."""
    keys = sorted({_arm_key(r) for r in runs})
    folds = [f for f in ("A->C", "C->A", "A/10->A") if any(r["fold"] == f for r in runs)]

    def values(arm_key: tuple, fold: str) -> list[float]:
        return [r["mean_dice"] for r in runs if r["fold"] == fold and _arm_key(r) == arm_key]

    def label(arm_key: tuple) -> str:
        """``arm [lr xF] [tiles] [N steps]``: an arm key, or its first three fields (no length)."""
        arm, factor, tile, *steps = arm_key
        return " ".join(
            [
                arm,
                *([f"lr x{factor}"] if factor != 1.0 else []),
                *(["tiles"] if tile != "slice" else []),
                *(f"{n} steps" for n in steps),
            ]
        )

    for arm_key in keys:
        line = [f"{label(arm_key):28s}"]
        for fold in folds:
            found = values(arm_key, fold)
            if found:
                spread = statistics.stdev(found) if len(found) > 1 else 0.0
                line.append(f"{fold} {statistics.mean(found):.3f} +- {spread:.3f} (n={len(found)})")
        print("  ".join(line))
        for fold in folds:
            organs = [r["dice"] for r in runs if r["fold"] == fold and _arm_key(r) == arm_key]
            if organs:
                means = {organ: statistics.mean(o[organ] for o in organs) for organ in organs[0]}
                print(f"    {fold}: " + ", ".join(f"{organ} {value:.2f}" for organ, value in means.items()))
    from quality import confidence

    for arm_key in keys:
        # against scratch at 1x, and a pre-trained arm also against scratch at its own rate (the rate control)
        baselines = [("scratch", 1.0, *arm_key[2:])]
        if arm_key[0] != "scratch" and arm_key[1] != 1.0:
            baselines.append(("scratch", *arm_key[1:]))
        for baseline in baselines:
            if arm_key == baseline or baseline not in keys:
                continue
            for fold in folds:
                pairs = _paired(runs, fold, arm_key, baseline)
                if len(pairs) > 1:
                    gaps = [ours - theirs for ours, theirs in pairs]
                    mean, half = confidence(gaps)
                    ahead = sum(gap > 0 for gap in gaps)
                    print(
                        f"{label(arm_key)} - {label(baseline[:3])}, {fold}: {mean:+.3f} "
                        f"[{mean - half:+.3f}, {mean + half:+.3f}] ({ahead}/{len(gaps)} seeds ahead)"
                    )
    if plot_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = sorted({arm_key[:3] for arm_key in keys})  # arm, rate, inference; x: fine-tuning steps
    lengths = sorted({arm_key[3] for arm_key in keys})
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(folds), figsize=(4.5 * len(folds), 3.8), squeeze=False)
    for axis, fold in zip(axes[0], folds, strict=True):
        for number, arm in enumerate(series):
            offset = (number - (len(series) - 1) / 2) * 0.6 / len(series)
            centres, means = [], []
            for position, steps in enumerate(lengths):
                found = values((*arm, steps), fold)
                if found:
                    axis.scatter([position + offset] * len(found), found, color=colors(number), s=12, alpha=0.6)
                    centres.append(position + offset)
                    means.append(statistics.mean(found))
            if centres:
                axis.plot(centres, means, color=colors(number), marker="_", markersize=16, label=label(arm))
        axis.set_xticks(range(len(lengths)), [str(steps) for steps in lengths])
        axis.set_xlabel("fine-tuning steps")
        axis.set_title(fold)
        axis.set_ylabel("mean Dice, 5 organs (dots: seeds)")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=110)


if __name__ == "__main__":
    main()
