"""Quality benchmark: does pre-training (MoCo, LRC, MoCo+LRC) beat scratch with k = 1, 2, 4 labelled volumes?

Data: the synthetic abdominal CT cohort of :mod:`lrc.synthetic` (exact labels, 8 organs), split by
phantom seed so that no volume plays two roles:

* unlabeled pre-training pool: seeds ``1000 ..`` (``--unlabeled`` of them);
* labelled volumes: seeds ``100 + 10 * s ..`` for run seed ``s`` (``k`` of them; each run seed
  draws other labelled patients, so the spread includes the choice of patients);
* test volumes: ``dev`` seeds ``2000 ..`` for choosing settings, ``final`` seeds ``9000 ..``,
  used only to report the chosen recipe (``--test final``).

Each run: pre-train (once per method, recipe and seed; reused when the model's card holds the same
configuration), fine-tune a fixed number of steps (no early stopping: a handful of labelled
volumes leaves none to validate on), Dice per organ on every test volume. ``supervised+lrc``
pre-trains on the ``k`` labelled volumes themselves (Dice + cross-entropy plus ``lambda * L_local``,
on the pre-training's views), then fine-tunes on them as the other methods do.

Presets: ``reduced`` (CPU, small U-Net) and ``full`` (one GPU). Recipe options (``--lambda-local``,
``--independent``, ...) change the pre-training and name the row with ``--tag``. ``--dims 3`` runs
the issue's 2D-vs-3D row: pre-training on blocks and fine-tuning on patches of 32 slices, paired
with scratch in 3D (``scratch...-3d``); on a GPU (a 2-core CPU takes hours).

    python bench/quality.py --preset reduced --seeds 0 1 2 --k 1 2 4 --tag spec
    python bench/quality.py --summary            # tables and plots from bench/results/quality.json
    python bench/quality.py --summary --results R.json --against weak/moco+lrc   # gaps to plain transfer too
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "quality.json"
WORK = HERE / "out" / "quality"
LOSS_WINDOW = 50  # fine-tuning steps per point of a run's recorded training-loss curve
TEST_SEEDS = {"dev": 2000, "final": 9000}
SUPERVISED = "supervised+lrc"  # pre-trains on the labelled volumes: Dice + cross-entropy plus lambda * L_local
PRESETS: dict[str, dict[str, Any]] = {
    "reduced": {
        "features": (16, 16, 32, 64, 128, 16),
        "spacing": 3.0,
        "canvas": 96,
        "view_size": 64,
        "pretrain_steps": 300,
        "pretrain_batch": 16,
        "finetune_steps": 300,
        "finetune_batch": 8,
        "patch": 64,
        "unlabeled": 24,
        "tests": 6,
    },
    "full": {
        "features": (32, 32, 64, 128, 256, 32),
        "spacing": 2.0,
        "canvas": 128,
        "view_size": 112,
        "pretrain_steps": 3000,
        "pretrain_batch": 32,
        "finetune_steps": 1000,
        "finetune_batch": 16,
        "patch": 112,
        "unlabeled": 64,
        "tests": 12,
    },
}


# CT intensities are calibrated (HU tell organs apart), so the contrastive task should not teach the
# network to ignore them: "weak" keeps only noise and blur differences between the views (the
# default of lrc.views.ViewConfig since the GPU runs); "spec" is the specification's ranges.
INTENSITY: dict[str, dict[str, Any]] = {
    "spec": {"gamma": (0.7, 1.5), "scale": (0.9, 1.1), "shift": 0.1},
    "weak": {"gamma": (1.0, 1.0), "scale": (1.0, 1.0), "shift": 0.0},
}


@functools.cache
def phantom(seed: int) -> tuple[Any, Any]:
    """Phantom ``seed`` (image, labels), generated once per process."""
    from lrc.synthetic import make_phantom

    return make_phantom(seed)


def recipe(args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int) -> Any:
    """The pre-training configuration of one run."""
    from lrc.superpixels import SuperpixelParams
    from lrc.train.pretrain import PretrainConfig
    from lrc.views import ViewConfig

    base = PretrainConfig()
    return PretrainConfig(
        method=method,
        **_volume_settings(args, "pretrain"),
        steps=args.pretrain_steps or preset["pretrain_steps"],
        batch_size=preset["pretrain_batch"],
        spacing=preset["spacing"],
        canvas=preset["canvas"],
        view_size=preset["view_size"],
        features=preset["features"],
        queue_size=1024,
        lr=args.pretrain_lr or base.lr,
        momentum=args.momentum or base.momentum,
        temperature_local=args.temperature_local or base.temperature_local,
        lambda_local=base.lambda_local if args.lambda_local is None else args.lambda_local,
        regions_per_image=args.regions or base.regions_per_image,
        pixels_per_region=args.pixels or base.pixels_per_region,
        decorrelation_weight=args.decorrelation,
        local_negatives=args.local_negatives,
        negative_margin=args.negative_margin,
        restore_weight=args.restore,
        views=replace(
            ViewConfig(),
            independent_geometry=args.independent,
            flip=not args.no_view_flip,
            crop_scale=tuple(args.crop_scale or ViewConfig().crop_scale),
            **INTENSITY[args.intensity],
        ),
        superpixels=replace(SuperpixelParams(), scale=args.sp_scale or SuperpixelParams().scale),
        seed=seed,
    )


def run_one(args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int, k: int) -> list[dict[str, Any]]:
    """Pre-train (or reuse), fine-tune on ``k`` labelled phantoms, score on each test set (one record each)."""
    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.label_match import match_labels
    from lrc.synthetic import ORGANS, label_table
    from lrc.train.finetune import finetune
    from lrc.train.pretrain import pretrain

    init, pretrain_seconds = None, 0.0
    train = [phantom(100 + 10 * seed + i) for i in range(k)]
    if method != "scratch":
        config = recipe(args, preset, method, seed)
        unlabeled = _unlabeled(args, preset, method)
        # named by what was trained, so recipes that differ only in fine-tuning share a pre-training;
        # supervised+lrc trains on the k labelled volumes (with their labels), not on the unlabeled pool
        pool = f"k{k}" if method == SUPERVISED else f"u{unlabeled}"
        init = WORK / f"pre-{method}-{pool}-s{seed}-{_digest(_stable(config.to_json()))}"
        if not _reusable(init, config.to_json()):
            started = time.perf_counter()
            cache = WORK / "superpixel-cache"
            if method == SUPERVISED:
                class_of = {value: index for index, value in enumerate(label_table(), start=1)}
                images, labels = [c[0] for c in train], [c[1] for c in train]
                pretrain(images, init, config, device=args.device, cache_dir=cache, labels=labels, class_of=class_of)
            else:
                images = [phantom(1000 + i)[0] for i in range(unlabeled)]
                pretrain(images, init, config, device=args.device, cache_dir=cache)
            pretrain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tune = tuning(args, preset, method, seed)
    contrast = _contrast_data(args, preset, method, seed) if args.contrast_weight else None
    losses: list[float] = []
    model = finetune(
        train,
        label_table(),
        WORK / f"ft-{args.tag}-{method}-k{k}-s{seed}",
        tune,
        validation=[],
        init=init,
        device=args.device,
        progress=lambda _, metrics: losses.append(metrics["loss"]),
        unlabeled=contrast,
    )
    finetune_seconds = time.perf_counter() - started
    predictor = Predictor.from_dir(model, device=args.device)  # whole slices: tuning() says so
    assert predictor.card.labels is not None
    organs = match_labels(predictor.card.labels, label_table())  # by name, as everywhere a model meets labels
    # how well it fits the volumes it learnt from: a low test Dice with a high one here is overfitting
    fitted = [evaluate(predictor.predict(image), labels, organs, distances=False) for image, labels in train]
    fit = {
        "train_dice": statistics.mean(mean_dice(c) or 0.0 for c in fitted),
        "loss_curve": [
            round(statistics.mean(losses[i : i + LOSS_WINDOW]), 4) for i in range(0, len(losses), LOSS_WINDOW)
        ],
    }
    records = []
    for test in args.test:
        tests = [phantom(TEST_SEEDS[test] + i) for i in range(preset["tests"])]
        per_case = [evaluate(predictor.predict(image), labels, organs, distances=False) for image, labels in tests]
        dice = {name: statistics.mean(float(c[name]["dice"] or 0.0) for c in per_case) for name in ORGANS.values()}
        records.append(
            {
                "tag": args.tag,
                "preset": args.preset,
                "method": method,
                "k": k,
                "seed": seed,
                "test": test,
                "dice": dice,
                "mean_dice": statistics.mean(mean_dice(c) or 0.0 for c in per_case),
                "pretrain_seconds": round(pretrain_seconds, 1),
                "finetune_seconds": round(finetune_seconds, 1),
                "recipe": recipe(args, preset, method, seed).to_json() if method != "scratch" else None,
                "unlabeled": _unlabeled(args, preset, method),
                "finetune": tune.to_json(),
                "contrast": contrast.config.to_json() if contrast else None,
                **fit,
            }
        )
    return records


def _contrast_recipe(args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int) -> Any:
    """The pre-training objective fine-tuning keeps on (``--contrast-weight``; ``None`` without): the
    run's own recipe (MoCo+LRC for scratch), or its settings with ``--contrast-method``."""
    if not args.contrast_weight:
        return None
    if method == SUPERVISED:
        raise SystemExit("--contrast-weight: supervised+lrc has no unlabeled pool")
    return recipe(args, preset, args.contrast_method or ("moco+lrc" if method == "scratch" else method), seed)


def _contrast_data(args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int) -> Any:
    """The unlabeled pool with :func:`_contrast_recipe`'s objective."""
    from lrc.train.contrast_term import Unlabeled

    pool = [phantom(1000 + i)[0] for i in range(int(args.unlabeled or preset["unlabeled"]))]
    return Unlabeled(pool, _contrast_recipe(args, preset, method, seed), WORK / "superpixel-cache")


def _unlabeled(args: argparse.Namespace, preset: dict[str, Any], method: str) -> int:
    """Unlabeled volumes a method pre-trains on (recorded for scratch too, as in the first results)."""
    return 0 if method == SUPERVISED else int(args.unlabeled or preset["unlabeled"])


def tuning(args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int) -> Any:
    """The fine-tuning configuration of one run (transfer settings only matter with a pre-trained init)."""
    from lrc.train.finetune_config import FinetuneConfig

    pretrained = method != "scratch"
    return FinetuneConfig(
        **_volume_settings(args, "finetune"),
        steps=args.finetune_steps or preset["finetune_steps"],
        batch_size=preset["finetune_batch"],
        patch=args.patch or preset["patch"],
        spacing=preset["spacing"],
        canvas=preset["canvas"],
        features=preset["features"],
        lr=args.finetune_lr or FinetuneConfig.lr,
        backbone_lr_factor=args.backbone_lr_factor if pretrained else args.scratch_lr_factor,
        transfer=args.transfer if pretrained else "all",
        warmup_steps=args.warmup_steps if pretrained else 0,
        shrink=args.shrink if pretrained else 1.0,
        perturb=args.perturb if pretrained else 0.0,
        anchor_weight=args.anchor_weight if pretrained else 0.0,
        reinit=tuple(args.reinit) if pretrained else (),
        augment_scale=tuple(args.augment_scale or (1.0, 1.0)),
        augment_rotate=args.augment_rotate,
        flip=args.flip,
        contrast_weight=args.contrast_weight,
        contrast_every=args.contrast_every,
        tile="slice",  # scored on whole slices as every earlier run; inference_fov.py scores tiles
        seed=seed,
    )


BLOCK_DEPTH = 32  # 3D: pre-training views and fine-tuning patches span 32 slices of the phantoms' 48


def _volume_settings(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """2D (the default: nothing to add) or 3D settings of a pre-training or fine-tuning configuration:
    the phantoms' own slice spacing, pre-training blocks of a whole phantom."""
    from lrc.synthetic.config import DEFAULT_CONFIG

    if args.dims == 2:
        return {}
    grid = {"spatial_dims": 3, "spacing_z": DEFAULT_CONFIG.spacing[2]}
    if stage == "pretrain":
        return grid | {"depth": DEFAULT_CONFIG.shape[2], "view_depth": BLOCK_DEPTH}
    return grid | {"patch_depth": BLOCK_DEPTH}


def warm_superpixels(preset: dict[str, Any], unlabeled: int, sp_scale: float | None, workers: int) -> None:
    """Fill the super-pixel cache of the unlabeled pool with ``workers`` processes (before parallel runs)."""
    from concurrent.futures import ProcessPoolExecutor

    seeds = list(range(1000, 1000 + unlabeled))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(functools.partial(_warm_one, preset=preset, sp_scale=sp_scale), seeds))


def _warm_one(seed: int, preset: dict[str, Any], sp_scale: float | None) -> None:
    from lrc.intensity import IntensityWindow
    from lrc.superpixels import SuperpixelCache, SuperpixelParams
    from lrc.train.slices import build_slices

    image = phantom(seed)[0]
    params = replace(SuperpixelParams(), scale=sp_scale or SuperpixelParams().scale)
    cache = SuperpixelCache(WORK / "superpixel-cache", params)
    window = IntensityWindow.for_modality(image.modality)
    build_slices([image], window, preset["spacing"], preset["canvas"], cache=cache)


def _reusable(directory: Path, config: dict[str, Any]) -> bool:
    """True when ``directory`` holds a pre-trained model made with exactly this configuration."""
    card = directory / "model.json"
    if not card.exists():
        return False
    made = json.loads(card.read_text())["training"]["config"]
    return bool(_stable(made) == _stable(json.loads(json.dumps(config))))


def _digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


# settings added after the first results; older runs used these values
_TUNING_DEFAULTS = {
    "transfer": "all",
    "warmup_steps": 0,
    "shrink": 1.0,
    "perturb": 0.0,
    "reinit": [],
    "augment_scale": [1.0, 1.0],
    "augment_rotate": 0.0,
    "flip": True,
    "tile": "slice",
    "contrast_weight": 0.0,
    "contrast_every": 1,
    "anchor_weight": 0.0,
}
_RECIPE_DEFAULTS = {
    "decorrelation_weight": 0.0,
    "local_negatives": "batch",
    "negative_margin": 0.0,
    "restore_weight": 0.0,
    "restore_mask": 0.25,
}


def _stable(recipe: dict[str, Any]) -> dict[str, Any]:
    """A pre-training's settings less those at the value they had before they were added (stable names)."""
    return {k: v for k, v in recipe.items() if k not in _RECIPE_DEFAULTS or v != _RECIPE_DEFAULTS[k]}


def _key(run: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two runs the same experiment: the tag, and every setting of both trainings."""
    pretrained = run["method"] != "scratch"
    tuned = {**_TUNING_DEFAULTS, **run["finetune"]}
    made = run["recipe"]
    return (
        run["tag"],
        run["preset"],
        run["unlabeled"] if pretrained else 0,
        _digest({k: v for k, v in {**_RECIPE_DEFAULTS, **made}.items() if k != "seed"} if made else {}),
        _digest({k: v for k, v in tuned.items() if k != "seed"}),
        _digest({k: v for k, v in (run.get("contrast") or {}).items() if k != "seed"}),  # the term's objective
        run["method"],
        run["k"],
        run["seed"],
        run["test"],
    )


def _planned(
    args: argparse.Namespace, preset: dict[str, Any], method: str, seed: int, k: int, test: str
) -> tuple[Any, ...]:
    """The key of a run before it runs (to skip runs already in the results)."""
    pretrained = method != "scratch"
    return _key(
        {
            "tag": args.tag,
            "preset": args.preset,
            "unlabeled": _unlabeled(args, preset, method),
            "recipe": recipe(args, preset, method, seed).to_json() if pretrained else None,
            "finetune": tuning(args, preset, method, seed).to_json(),
            "contrast": contrast.to_json() if (contrast := _contrast_recipe(args, preset, method, seed)) else None,
            "method": method,
            "k": k,
            "seed": seed,
            "test": test,
        }
    )


def save(runs: list[dict[str, Any]], path: Path) -> None:
    """Write every run with the machine and library versions."""
    import torch
    from speed_env import cpu_name

    from lrc.model_dirs.card import software_versions

    machine = {
        "platform": platform.platform(),
        "cpu": cpu_name(),  # CPU trainings are bit-reproducible on one processor model, not across models
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "software": software_versions(),
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")


def summarize(runs: list[dict[str, Any]], test: str = "dev", against: str | None = None) -> str:
    """Markdown table: mean Dice +- sd over seeds per (tag, method, k), and the gap to scratch.

    ``against`` (``TAG/METHOD``, or ``TAG`` for the row's own method) adds a column: the paired gap
    to that arm, e.g. a recipe against plain transfer rather than against scratch.
    """
    rows = [r for r in runs if r["test"] == test]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["finetune"]["steps"], r["tag"], r["k"], r["method"]), []).append(r)
    extra = f" vs {against} (paired) |" if against else ""
    lines = [
        f"| preset | fine-tune steps | recipe | k | method | mean Dice ({test}) | vs scratch (paired) |{extra} seeds "
        "| Dice on its training volumes |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if against else ""),
    ]
    for (preset, steps, tag, k, method), group in sorted(groups.items()):
        values = [g["mean_dice"] for g in sorted(group, key=lambda g: g["seed"])]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        same = [r for r in rows if (r["preset"], r["finetune"]["steps"], r["k"]) == (preset, steps, k)]
        baseline = _scratch_tag(group[0]["finetune"], preset)  # same learning rate, augmentation and patch
        gap = "" if method == "scratch" else _paired_gap(group, [r for r in same if r["tag"] == baseline])
        if against:
            ref_tag, _, ref_method = against.partition("/")
            ref_method = ref_method or method
            reference = [r for r in same if (r["tag"], r["method"]) == (ref_tag, ref_method)]
            gap += " | " + ("" if (tag, method) == (ref_tag, ref_method) else _paired_gap(group, reference))
        fitted = [g["train_dice"] for g in group if "train_dice" in g]  # recorded since the fourth CPU session
        fit = f"{statistics.mean(fitted):.3f} ({len(fitted)} seeds)" if fitted else ""
        lines.append(
            f"| {preset} | {steps} | {tag} | {k} | {method} | {statistics.mean(values):.3f} +- {spread:.3f} | {gap} | "
            + ", ".join(f"{v:.3f}" for v in values)
            + f" | {fit} |"
        )
    return "\n".join(lines)


def _paired_gap(group: list[dict[str, Any]], reference: list[dict[str, Any]]) -> str:
    """Mean Dice gap of ``group`` to ``reference`` over the seeds both ran, its 95% confidence interval
    (Student's t over the per-seed gaps; from 3 seeds) and the seeds ahead."""
    by_seed = {r["seed"]: r["mean_dice"] for r in reference}
    gaps = [g["mean_dice"] - by_seed[g["seed"]] for g in group if g["seed"] in by_seed]
    if not gaps:
        return ""
    mean, half = confidence(gaps)
    interval = f" [{mean - half:+.3f}, {mean + half:+.3f}]" if len(gaps) >= 3 else ""
    return f"{mean:+.3f}{interval} ({sum(x > 0 for x in gaps)}/{len(gaps)} seeds ahead)"


def confidence(gaps: list[float]) -> tuple[float, float]:
    """Mean of per-seed gaps and the half-width of its 95% confidence interval (Student's t; NaN below
    2 gaps: one seed has no spread)."""
    from scipy.stats import t

    mean = statistics.mean(gaps)
    if len(gaps) < 2:
        return mean, math.nan
    return mean, float(t.ppf(0.975, len(gaps) - 1) * statistics.stdev(gaps) / len(gaps) ** 0.5)


def plot(runs: list[dict[str, Any]], path: Path, test: str = "dev") -> None:
    """Dice vs k per method (mean and seeds), one panel per recipe tag."""
    rows = [r for r in runs if r["test"] == test]
    panels = sorted({(r["tag"], r["finetune"]["steps"]) for r in rows if r["method"] != "scratch"})
    fig, axes = _panels(max(1, len(panels)))
    colours = {"scratch": "black", "moco": "#c63", "lrc": "#27a", "moco+lrc": "#2a7", "supervised+lrc": "#a2a"}
    for axis, (tag, steps) in zip(axes, panels, strict=False):
        # the scratch row the table pairs this recipe with (same learning rate, augmentation, mirroring, patch)
        first = next(r for r in rows if (r["tag"], r["finetune"]["steps"]) == (tag, steps))
        baseline = _scratch_tag(first["finetune"], first["preset"])
        for method, colour in colours.items():
            chosen = [
                r
                for r in rows
                if r["method"] == method
                and r["finetune"]["steps"] == steps
                and r["tag"] == (tag if method != "scratch" else baseline)
            ]
            ks = sorted({r["k"] for r in chosen})
            if not ks:
                continue
            means = [statistics.mean(r["mean_dice"] for r in chosen if r["k"] == k) for k in ks]
            axis.plot(ks, means, "-o", color=colour, label=method if method != "scratch" else baseline)
            axis.scatter([r["k"] for r in chosen], [r["mean_dice"] for r in chosen], color=colour, s=8, alpha=0.5)
        axis.set_title(f"{tag}, {steps} fine-tuning steps", fontsize=9)
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 2, 4], labels=["1", "2", "4"])
        axis.set_xlabel("labelled volumes (k)")
        axis.set_ylabel(f"mean Dice, 8 organs ({test} test)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _panels(count: int) -> tuple[Any, list[Any]]:
    """A figure of ``count`` panels side by side (matplotlib without a display) and its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, count, figsize=(4.6 * count, 3.8), squeeze=False)
    return fig, list(axes[0])


def plot_steps(runs: list[dict[str, Any]], path: Path, test: str = "dev") -> bool:
    """Dice vs fine-tuning steps per (tag, k), scratch beside each recipe; False when only one length ran."""
    rows = [r for r in runs if r["test"] == test]
    lengths = sorted({r["finetune"]["steps"] for r in rows})
    ks = sorted({r["k"] for r in rows})
    if len(lengths) < 2:
        return False
    fig, axes = _panels(len(ks))
    for axis, k in zip(axes, ks, strict=True):
        for tag in sorted({r["tag"] for r in rows}):
            chosen = [r for r in rows if r["tag"] == tag and r["k"] == k]
            steps = sorted({r["finetune"]["steps"] for r in chosen})
            if len(steps) < 2:
                continue
            means = [statistics.mean(r["mean_dice"] for r in chosen if r["finetune"]["steps"] == n) for n in steps]
            line = axis.plot(steps, means, "-o", label=tag)[0]
            axis.scatter(
                [r["finetune"]["steps"] for r in chosen], [r["mean_dice"] for r in chosen], color=line.get_color(), s=8
            )
        axis.set_xscale("log")
        axis.set_title(f"k = {k}", fontsize=9)
        axis.set_xlabel("fine-tuning steps")
        axis.set_ylabel(f"mean Dice, 8 organs ({test} test)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def plot_loss(runs: list[dict[str, Any]], path: Path) -> bool:
    """Fine-tuning loss vs step per (tag, k), mean over seeds; False when no run recorded its curve."""
    rows = [r for r in runs if r["test"] == "dev" and "loss_curve" in r]  # one record per run
    ks = sorted({r["k"] for r in rows})
    if not ks:
        return False
    fig, axes = _panels(len(ks))
    for axis, k in zip(axes, ks, strict=True):
        for tag, length in sorted({(r["tag"], r["finetune"]["steps"]) for r in rows if r["k"] == k}):
            curves = [r["loss_curve"] for r in rows if (r["tag"], r["finetune"]["steps"], r["k"]) == (tag, length, k)]
            mean = [statistics.mean(c[i] for c in curves) for i in range(min(len(c) for c in curves))]
            steps = [(i + 1) * LOSS_WINDOW for i in range(len(mean))]
            axis.plot(steps, mean, label=f"{tag}, {length} steps ({len(curves)} seeds)")
        axis.set_yscale("log")
        axis.set_title(f"k = {k}", fontsize=9)
        axis.set_xlabel("fine-tuning step")
        axis.set_ylabel(f"Dice + CE loss (mean of {LOSS_WINDOW} steps)")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _tag(args: argparse.Namespace, method: str) -> str:
    """Row name of a run: pre-trained runs take ``--tag``; scratch runs :func:`_scratch_tag`."""
    if method != "scratch":
        return str(args.tag)
    from lrc.train.finetune_config import FinetuneConfig

    tuned = {"lr": args.finetune_lr or FinetuneConfig.lr, "augment_scale": args.augment_scale or [1.0, 1.0]}
    patch = args.patch or PRESETS[args.preset]["patch"]
    tuned |= {"augment_rotate": args.augment_rotate, "flip": args.flip, "patch": patch, "spatial_dims": args.dims}
    tuned |= {"contrast_weight": args.contrast_weight, "contrast_every": args.contrast_every}
    other = args.contrast_weight and args.contrast_method not in (None, "moco+lrc")
    rate = f"-bb{args.scratch_lr_factor:g}" if args.scratch_lr_factor != 1.0 else ""  # the rate control
    return _scratch_tag(tuned, args.preset) + rate + (f"-{args.contrast_method}" if other else "")


def _scratch_tag(tuned: dict[str, Any], preset: str) -> str:
    """The scratch row a run is paired with: ``scratch``, or with a suffix for another fine-tuning
    learning rate (``-lr0.003``), patch augmentation (``-aug0.7-1.4-r15``: scale range, degrees),
    patches never mirrored (``-noflip``), another patch side than the preset's (``-p96``) or 3D (``-3d``)."""
    from lrc.train.finetune_config import FinetuneConfig

    tag = "scratch" if tuned["lr"] == FinetuneConfig.lr else f"scratch-lr{tuned['lr']:g}"
    scale, rotate = tuned.get("augment_scale", [1.0, 1.0]), tuned.get("augment_rotate", 0.0)
    if list(scale) != [1.0, 1.0] or rotate:
        tag += f"-aug{scale[0]:g}-{scale[1]:g}-r{rotate:g}"
    if not tuned.get("flip", True):
        tag += "-noflip"
    if tuned.get("patch", PRESETS[preset]["patch"]) != PRESETS[preset]["patch"]:
        tag += f"-p{tuned['patch']}"
    if tuned.get("spatial_dims", 2) == 3:
        tag += "-3d"
    if tuned.get("contrast_weight", 0.0):
        tag += f"-contrast{tuned['contrast_weight']:g}e{tuned['contrast_every']}"
    return tag


def main() -> None:
    """Run the requested grid (skipping runs already in the results file) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    parser.add_argument("--methods", nargs="+", default=["scratch", "moco", "lrc", "moco+lrc"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--test", nargs="+", choices=sorted(TEST_SEEDS), default=["dev"], help="Test sets scored by every run."
    )
    parser.add_argument("--warm", type=int, default=0, help="Fill the super-pixel cache with N processes, then stop.")
    parser.add_argument("--tag", default="spec", help="Name of this pre-training recipe (a row of the table).")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--unlabeled", type=int, default=None)
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--pretrain-lr", type=float, default=None)
    parser.add_argument("--momentum", type=float, default=None, help="MoCo key-encoder momentum.")
    parser.add_argument("--finetune-steps", type=int, default=None)
    parser.add_argument("--finetune-lr", type=float, default=None, help="Peak fine-tuning learning rate.")
    parser.add_argument("--backbone-lr-factor", type=float, default=1.0)
    parser.add_argument(
        "--scratch-lr-factor",
        type=float,
        default=1.0,
        help="Scratch's rate for the layers a pre-trained base gives (a control for --backbone-lr-factor; "
        "its rows are tagged -bbF).",
    )
    parser.add_argument("--transfer", choices=["all", "encoder"], default="all", help="Pre-trained layers given.")
    parser.add_argument("--warmup-steps", type=int, default=0, help="Steps with the pre-trained layers frozen.")
    parser.add_argument("--shrink", type=float, default=1.0, help="Shrink and perturb: pre-trained factor.")
    parser.add_argument("--perturb", type=float, default=0.0, help="Shrink and perturb: a fresh init's factor.")
    parser.add_argument(
        "--anchor-weight",
        type=float,
        default=0.0,
        help="L2-SP: decoupled decay of the pre-trained layers towards their pre-trained values.",
    )
    parser.add_argument("--reinit", nargs="+", default=[], help="U-Net stages that start fresh (down_4 upcat_4 ...).")
    parser.add_argument(
        "--augment-scale", type=float, nargs=2, default=None, help="Fine-tuning patches' field of view (min max)."
    )
    parser.add_argument("--patch", type=int, default=None, help="Fine-tuning patch side (the canvas: whole slices).")
    parser.add_argument(
        "--dims",
        type=int,
        choices=[2, 3],
        default=2,
        help="3: blocks of 32 slices in pre-training and fine-tuning (a GPU's work); sliding-window inference.",
    )
    parser.add_argument(
        "--contrast-weight",
        type=float,
        default=0.0,
        help="Keep the pre-training loss on during fine-tuning, at this weight, on the unlabeled pool"
        " (scratch: MoCo+LRC with the recipe's settings; row 'scratch...-contrastW' + 'eN').",
    )
    parser.add_argument("--contrast-every", type=int, default=1, help="Fine-tuning steps per contrast batch.")
    parser.add_argument(
        "--contrast-method", choices=["moco", "lrc", "moco+lrc"], help="The contrast term's method (default: the run's)"
    )
    parser.add_argument("--augment-rotate", type=float, default=0.0, help="Fine-tuning patches' rotation, degrees.")
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Mirror fine-tuning patches (runs before"
        " 2026-12-03 did; their rows are 'scratch' and the like, those without '-noflip').",
    )
    parser.add_argument("--no-view-flip", action="store_true", help="Pre-training views never mirrored.")
    parser.add_argument("--lambda-local", type=float, default=None)
    parser.add_argument("--decorrelation", type=float, default=0.0, help="Channel-correlation penalty weight.")
    parser.add_argument("--restore", type=float, default=0.0, help="Restoration (in-painting) loss weight.")
    parser.add_argument("--temperature-local", type=float, default=None)
    parser.add_argument("--local-negatives", choices=["batch", "image"], default="batch", help="LRC negatives.")
    parser.add_argument(
        "--negative-margin", type=float, default=0.0, help="LRC: regions this close in intensity are no negatives."
    )
    parser.add_argument("--regions", type=int, default=None, help="K regions per image.")
    parser.add_argument("--pixels", type=int, default=None, help="M pixels per region.")
    parser.add_argument("--sp-scale", type=float, default=None, help="Felzenszwalb scale.")
    parser.add_argument("--independent", action="store_true", help="One geometric transform per view.")
    parser.add_argument(
        "--crop-scale", type=float, nargs=2, default=None, help="View crop side as a fraction of the canvas (min max)."
    )
    parser.add_argument("--intensity", choices=sorted(INTENSITY), default="spec", help="Intensity augmentation.")
    parser.add_argument("--summary", action="store_true", help="Only print the table and draw the plot.")
    parser.add_argument(
        "--against", metavar="TAG[/METHOD]", help="Tables: a column of paired gaps to this arm (besides scratch)."
    )
    parser.add_argument(
        "--results", type=Path, help=f"Results file (default {RESULTS.name}; --summary: every quality*.json)"
    )
    parser.add_argument("--no-plot", action="store_true", help="Skip the PNG (machines without matplotlib).")
    args = parser.parse_args()

    summarise_all = args.summary and args.results is None
    args.results = args.results or RESULTS
    runs: list[dict[str, Any]] = json.loads(args.results.read_text())["runs"] if args.results.exists() else []
    if summarise_all:  # every results file of the folder (parallel runs write one each)
        found = {
            _key(r): r
            for f in sorted(args.results.parent.glob("quality*.json"))
            for r in json.loads(f.read_text())["runs"]
        }
        runs = list(found.values())
    elif args.warm:
        preset = PRESETS[args.preset]
        warm_superpixels(preset, args.unlabeled or preset["unlabeled"], args.sp_scale, args.warm)
        return
    elif not args.summary:  # with --summary and --results: that file's table only
        preset = PRESETS[args.preset]
        done = {_key(r) for r in runs}
        for seed in args.seeds:
            for k in args.k:
                for method in args.methods:
                    run_args = argparse.Namespace(**{**vars(args), "tag": _tag(args, method)})
                    if all(_planned(run_args, preset, method, seed, k, t) in done for t in args.test):
                        continue
                    records = run_one(run_args, preset, method, seed, k)
                    runs.extend(records)
                    save(runs, args.results)
                    for run in records:
                        shown = ("tag", "method", "k", "seed", "test", "mean_dice")
                        print(json.dumps({x: run[x] for x in shown}), flush=True)
    for test in ("dev", "final"):
        if any(r["test"] == test for r in runs):
            print(summarize(runs, test, args.against))
            if not args.no_plot:
                plot(runs, args.results.with_name(f"{args.results.stem}_{test}.png"), test)
                plot_steps(runs, args.results.with_name(f"{args.results.stem}_{test}_steps.png"), test)
        if not args.no_plot:
            plot_loss(runs, args.results.with_name(f"{args.results.stem}_loss.png"))


if __name__ == "__main__":
    main()
