"""How far training moved a U-Net's convolutions from where they started.

For each model directory given (pre-trained or fine-tuned), and each convolution that feeds an
instance norm: the mean filter norm against the same layer's in a fresh initialisation, and the
relative distance ``|w - w0| / |w0|`` and cosine to ``w0``, the initialisation the same seed gives
(pre-training and fine-tuning both seed torch with the run seed before they build the U-Net, so
``w0`` is where both started). With ``--reference MODEL`` (a run of the same seed, e.g. scratch
fine-tuning), also the cosine between the two moves ``w - w0`` and ``w_ref - w0``: whether training
went where the reference went.

Why: such a convolution computes the same function at any filter scale (the norm divides it out),
so a filter grown by pre-training turns each AdamW step into a smaller change of direction (a lower
effective learning rate). A norm ratio well above 1 would point there; near 1 rules it out.

    python bench/archive/weight_drift.py bench/out/quality/pre-moco+lrc-u24-s0-* \
        --reference bench/out/quality/ft-scratch-scratch-k1-s0

With ``--start MODEL`` the distances are to that model's weights instead (a fine-tuned model against
its pre-trained base: how much of the base fine-tuning kept; layers the base lacks are left out).

    python bench/archive/weight_drift.py bench/out/quality/ft-TAG-moco+lrc-k1-s0 --start bench/out/quality/pre-...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch


def drift(directory: Path, reference: Path | None = None, start: Path | None = None) -> dict[str, Any]:
    """Per-layer filter-norm ratio, relative distance and cosine to the seed's initialisation or to
    ``start``'s weights (and the cosine between this model's move from there and ``reference``'s)."""
    from lrc.model_dirs.store import load_model
    from lrc.nets.basic_unet import Convolution
    from lrc.nets.unet import UNet

    net, card = load_model(directory)
    torch.manual_seed(int(card.training["seeds"]["torch"]))
    arguments = net.arguments
    if start:
        began = load_model(start)[0]
    else:
        began = UNet(arguments["spatial_dims"], 1, arguments["out_channels"], arguments["features"])
    initial = dict(began.named_modules())
    other = dict(load_model(reference)[0].named_modules()) if reference else {}
    layers = {}
    for name, module in net.named_modules():
        if not isinstance(module, Convolution):
            continue
        weight, weight_0 = module.conv.weight.detach(), initial[name].conv.weight.detach()
        if weight.shape != weight_0.shape:  # a new output layer (another number of classes)
            continue
        layers[name] = {
            "norm_ratio": float(weight.flatten(1).norm(dim=1).mean() / weight_0.flatten(1).norm(dim=1).mean()),
            "distance": float((weight - weight_0).norm() / weight_0.norm()),
            "cosine": float(torch.nn.functional.cosine_similarity(weight.flatten(), weight_0.flatten(), dim=0)),
        }
        if reference:
            moved, moved_ref = weight - weight_0, other[name].conv.weight.detach() - weight_0
            layers[name]["move_cosine"] = float(
                torch.nn.functional.cosine_similarity(moved.flatten(), moved_ref.flatten(), dim=0)
            )
    return {"model": str(directory), "kind": card.kind, "start": str(start or "seed"), "layers": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--reference", type=Path, default=None, help="A run of the same seed to compare moves with.")
    parser.add_argument("--start", type=Path, default=None, help="Measure from this model's weights (a base).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the rows as JSON here.")
    args = parser.parse_args()
    rows = [drift(path, args.reference, args.start) for path in args.models]
    for row in rows:
        values = row["layers"].values()
        ratios = [v["norm_ratio"] for v in values]
        distances = [v["distance"] for v in values]
        cosines = sorted(v["cosine"] for v in values)
        print(
            f"{row['model']}: filter norm / start {min(ratios):.2f}-{max(ratios):.2f}, "
            f"moved {min(distances):.2f}-{max(distances):.2f} of the initial norm, "
            f"cosine to the start {cosines[0]:.2f}-{cosines[-1]:.2f} (median {cosines[len(cosines) // 2]:.2f})"
            + (
                ", cosine of the moves with the reference's " + ", ".join(f"{v['move_cosine']:+.2f}" for v in values)
                if args.reference
                else ""
            )
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
