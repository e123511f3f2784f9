"""Benchmark: time of one pre-training step, MoCo v2 against LRC and MoCo+LRC, on the same batch.

All methods run the same views of the same slices (super-pixels precomputed, as the cache makes
them in training). Besides whole steps, the LRC-specific work is timed alone: region sampling plus
the local loss, forward and backward, on dense embeddings of the step's size.

Usage: ``python bench/step_time.py [--device auto] [--batch 16] [--size 192] [--steps 10]``
Writes ``bench/results/step_time_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Time ``--steps`` steps of each method after two warm-up steps."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from lrc.device import resolve_device
    from lrc.intensity import IntensityWindow
    from lrc.io import read_nifti
    from lrc.losses import LocalRegionContrastLoss, sample_regions
    from lrc.superpixels import SuperpixelCache
    from lrc.train.pretrain import PretrainConfig
    from lrc.train.pretrainer import Pretrainer
    from lrc.train.slices import build_slices

    device = resolve_device(args.device)
    ct = read_nifti(args.shared_data / "nifti" / "totalseg_ct_abdomen" / "example_ct.nii.gz", modality="CT")
    canvas = args.size + 64
    slices = build_slices(
        [ct], IntensityWindow.for_modality("CT"), 1.5, canvas, cache=SuperpixelCache(HERE / "out" / "superpixel-cache")
    )
    rng = np.random.default_rng(0)
    index = torch.from_numpy(rng.integers(0, len(slices), args.batch))
    images = torch.from_numpy(slices.images)[index][:, None].float().to(device)
    assert slices.superpixels is not None
    maps = torch.from_numpy(slices.superpixels)[index].long().to(device)
    results: dict[str, dict[str, float]] = {}
    for method in ("moco", "lrc", "moco+lrc"):
        config = PretrainConfig(
            method=method, steps=args.steps + 2, batch_size=args.batch, canvas=canvas, view_size=args.size
        )
        trainer = Pretrainer(config, device)
        times = []
        for step in range(args.steps + 2):
            _sync(device)
            start = time.perf_counter()
            trainer.step(images, maps)
            _sync(device)
            if step >= 2:
                times.append(time.perf_counter() - start)
        results[method] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
        if device.type == "cuda":
            results[method]["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
            torch.cuda.reset_peak_memory_stats(device)
    # The LRC-specific part alone: sampling, gathering the decoder features of the sampled pixels,
    # the local head on them and the local loss, forward and backward, at the step's sizes.
    from lrc.nets.unet import ContrastiveUNet, UNet

    heads = ContrastiveUNet(UNet(2, 1, 2), 128).to(device)
    dense = torch.randn(2 * args.batch, 32, args.size, args.size, device=device, requires_grad=True)
    small_maps = torch.nn.functional.interpolate(maps[:, None].float(), size=(args.size, args.size), mode="nearest")[
        :, 0
    ].long()
    loss_fn = LocalRegionContrastLoss(0.1)
    times = []
    for step in range(args.steps + 2):
        _sync(device)
        start = time.perf_counter()
        sample = sample_regions(small_maps, small_maps, 16, 8)
        loss = loss_fn.from_views(dense[: args.batch], dense[args.batch :], sample, heads.project_local)
        loss.backward()
        _sync(device)
        if step >= 2:
            times.append(time.perf_counter() - start)
    results["lrc_sampling_and_loss_only"] = {"median_s": statistics.median(times)}
    moco = results["moco"]["median_s"]
    ratios = {m: round(results[m]["median_s"] / moco, 2) for m in ("lrc", "moco+lrc")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    report = {
        "device": name,
        "batch": args.batch,
        "view_size": args.size,
        "results": results,
        "ratio_to_moco": ratios,
        "sampling_share_of_lrc_step": round(
            results["lrc_sampling_and_loss_only"]["median_s"] / results["moco+lrc"]["median_s"], 3
        ),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"step_time_{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
