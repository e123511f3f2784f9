"""Linear probe of frozen features: are pre-trained features more organ-informative than random ones?

For each pre-trained model directory given, and for a randomly initialised network of the same shape
(seed 0), the frozen network's per-pixel features on the model grid (the last decoder stage, with
the third encoder stage upsampled beside it: multi-scale, ``F`` channels) are standardised and a
linear discriminant (class means, pooled covariance, class frequencies as priors) is fitted on
labelled phantoms (``--train``, the labelled seeds of run seed 0 by default) and scored by mean Dice
over the 8 organs on the dev test phantoms, body pixels only, slice by slice. Also reported: the
effective rank of the features (exp of the entropy of the normalised singular values): how many
directions the representation really uses (contrastive learning can collapse it), for all of them
and for the decoder's and the encoder's channels apart, and the decoder channels' mean squared
correlation (what the pre-training's decorrelation penalty acts on).

    python bench/archive/probe.py bench/out/quality/pre-moco+lrc-u24-s0-* [--out bench/archive/results/probe.json]
    python bench/archive/probe.py MODEL --shrink 0.5 --perturb 0.5   # the weights fine-tuning would start from

Rows are merged into ``--out`` by model and shrink/perturb settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/: the suite modules this probe reuses

import quality  # noqa: E402  (the cohort's seeds and phantoms)


def features(net: Any, card: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Body pixels of phantom ``seed`` on the model grid: features ``P x F`` and class indices ``P``."""
    from lrc.nets.unet import decode, encode
    from lrc.synthetic import label_table
    from lrc.train.slices import build_slices

    image, labels = quality.phantom(seed)
    class_of = {value: index for index, value in enumerate(label_table(), start=1)}
    slices = build_slices([image], card.window, card.spacing[0], card.canvas, labels=[labels], class_of=class_of)
    x = torch.from_numpy(slices.images.astype(np.float32))[:, None]  # N x 1 x C x C
    with torch.no_grad():
        net.eval()
        skips = encode(net, x)
        last = decode(net, skips)  # N x F0 x C x C
        middle = torch.nn.functional.interpolate(skips[2], size=last.shape[-2:], mode="bilinear")
        stacked = torch.cat([last, middle], 1)  # N x F x C x C
    values = stacked.permute(0, 2, 3, 1).reshape(-1, stacked.shape[1]).numpy()
    assert slices.labels is not None
    body = slices.images.reshape(-1) > 0.02
    return values[body], slices.labels.reshape(-1)[body].astype(np.int64)


def probe(net: Any, card: Any, train: list[int], test: list[int], classes: int) -> dict[str, float]:
    """Fit the linear discriminant on ``train`` phantoms; mean organ Dice on ``test``; effective ranks."""
    from lrc.losses import channel_correlation

    pairs = [features(net, card, s) for s in train]
    x, y = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    mean, spread = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / spread
    centres = np.stack([x[y == c].mean(0) if np.any(y == c) else np.zeros(x.shape[1]) for c in range(classes)])
    covariance = np.cov((x - centres[y]).T) + 1e-3 * np.eye(x.shape[1])
    weights = np.linalg.solve(covariance, centres.T)  # F x classes
    prior = np.log(np.bincount(y, minlength=classes) / len(y) + 1e-9)
    bias = -0.5 * np.sum(centres.T * weights, 0) + prior
    dices = []
    for seed in test:
        xt, yt = features(net, card, seed)
        predicted = (((xt - mean) / spread) @ weights + bias).argmax(1)
        per_organ = [
            2 * np.sum((predicted == c) & (yt == c)) / max(1, np.sum(predicted == c) + np.sum(yt == c))
            for c in range(1, classes)
        ]
        dices.append(float(np.mean(per_organ)))
    sample = x[np.random.default_rng(0).choice(len(x), min(len(x), 20000), replace=False)]
    decoder = int(card.arguments["features"][5])  # the first channels are the last decoder stage's
    return {
        "mean_dice": statistics.mean(dices),
        "effective_rank": effective_rank(sample),
        "channels": int(x.shape[1]),
        "decoder_rank": effective_rank(sample[:, :decoder]),
        "encoder_stage3_rank": effective_rank(sample[:, decoder:]),
        "decoder_correlation": float(channel_correlation(torch.from_numpy(sample[:, :decoder]))),
    }


def effective_rank(x: np.ndarray) -> float:
    """exp of the entropy of the normalised singular values of centred ``N x F`` features."""
    singular = np.linalg.svd(x - x.mean(0), compute_uv=False)
    share = singular / singular.sum()
    return float(np.exp(-np.sum(share * np.log(share + 1e-12))))


def main() -> None:
    """Probe each model and a random network of its shape; print and write JSON."""
    from lrc.model_dirs.store import load_model
    from lrc.nets.unet import UNet
    from lrc.synthetic import label_table
    from lrc.train.transfer import shrink_perturb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--train", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--tests", type=int, default=6, help="dev test phantoms 2000..")
    parser.add_argument("--shrink", type=float, default=1.0, help="Probe shrink * pre-trained + perturb * fresh.")
    parser.add_argument("--perturb", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "probe.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classes = len(label_table()) + 1
    test = [quality.TEST_SEEDS["dev"] + i for i in range(args.tests)]
    rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    for directory in args.models:
        net, card = load_model(directory)
        torch.manual_seed(0)
        random = UNet(2, 1, 2, tuple(card.arguments["features"]))
        fresh = UNet(2, 1, 2, tuple(card.arguments["features"])).state_dict()  # independent of `random`
        shrink_perturb(net, fresh, set(fresh), args.shrink, args.perturb)
        row = {
            "model": directory.name,
            "method": card.training.get("method"),
            "pretrain_steps": card.training.get("steps"),
            "decorrelation_weight": card.training["config"].get("decorrelation_weight", 0.0),
            "shrink": args.shrink,
            "perturb": args.perturb,
            "pretrained": probe(net, card, args.train, test, classes),
            "random": probe(random, card, args.train, test, classes),
        }
        same = (row["model"], row["shrink"], row["perturb"])
        rows = [r for r in rows if (r["model"], r.get("shrink", 1.0), r.get("perturb", 0.0)) != same] + [row]
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"train": args.train, "test": test, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
