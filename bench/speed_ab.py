"""Before/after of the predictor on a shared CPU: variants interleaved in one process, best of N.

The 2-core machine these benchmarks run on is shared with other jobs whose load swings by 3x within a
minute, so one long run per variant compares loads, not code. Here every variant predicts the same
block of slices in turn, ``--rounds`` times; the minimum (the run least disturbed) and the median of
wall and CPU seconds are reported per variant, with ratios to the current predictor.

Variants: ``before`` (``--before``: the predictor of commit 0c7dbac: C-ordered reoriented copy,
slices cut across it), ``layout`` (the current slice-major predictor with ``fast_cpu=False``),
``after`` (current: plus the group-norm, channels-last copy of the network).

Usage: ``python bench/speed_ab.py --before bench/out/predictor_0c7dbac.py [--slices 48] [--rounds 5]``
(``git show 0c7dbac:lrc/infer/predictor.py > bench/out/predictor_0c7dbac.py`` first).
Writes ``bench/results/speed_ab_cpu.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    """Interleave the variants, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=HERE.parent / "lrc" / "assets" / "starter_ct_abdomen")
    parser.add_argument("--slices", type=int, default=48, help="block of slices each variant predicts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed_ab_cpu.json")
    args = parser.parse_args()
    import numpy as np
    import torch
    from make_series import build
    from speed_env import machine

    from lrc.infer import Predictor
    from lrc.io import Volume, read_volume
    from lrc.model_dirs.store import load_model

    info = machine("cpu")
    image = read_volume(build(args.shared_data, HERE / "out" / "ct300", 300))
    k0 = (image.shape[2] - args.slices) // 2
    shift = np.eye(4)
    shift[2, 3] = k0
    block = Volume(image.array[:, :, k0 : k0 + args.slices], image.affine @ shift, "CT", image.source)
    spec = importlib.util.spec_from_file_location("predictor_before", args.before)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net, card = load_model(args.model, kind="segmentation", device="cpu")
    variants: dict[str, Any] = {
        "before": module.Predictor(net, card, "cpu"),
        "layout": Predictor(net, card, "cpu", fast_cpu=False),
        "after": Predictor(net, card, "cpu"),
    }
    reference = variants["before"].predict(block).array
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    agreement = {}
    for _ in range(args.rounds):
        for name, predictor in variants.items():
            begin, cpu = time.perf_counter(), time.process_time()
            labels = predictor.predict(block).array
            runs[name].append((time.perf_counter() - begin, time.process_time() - cpu))
            agreement[name] = float((labels == reference).mean())
    result: dict[str, Any] = {"benchmark": "speed_ab", "machine": info, "slices": args.slices}
    result["threads"] = torch.get_num_threads()
    result["per_variant"] = {
        name: {
            "min_s": round(min(w for w, _ in values), 3),
            "median_s": round(statistics.median(w for w, _ in values), 3),
            "min_cpu_s": round(min(c for _, c in values), 3),
            "agreement_with_before": agreement[name],
            "raw": values,
        }
        for name, values in runs.items()
    }
    after = result["per_variant"]["after"]
    result["over_after"] = {
        name: {"min": round(v["min_s"] / after["min_s"], 2), "median": round(v["median_s"] / after["median_s"], 2)}
        for name, v in result["per_variant"].items()
    }
    result["loadavg_after"] = machine("cpu")["loadavg_1_5_15"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "over_after": result["over_after"],
                "per_slice_min_s": {n: round(v["min_s"] / args.slices, 4) for n, v in result["per_variant"].items()},
            }
        )
    )


if __name__ == "__main__":
    main()
