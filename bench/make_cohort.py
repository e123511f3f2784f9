"""Write a synthetic CT cohort (:mod:`lrc.synthetic`) and a manifest for ``lrc finetune`` / ``lrc evaluate``.

    python bench/make_cohort.py --out bench/out/cohort --seeds 0-39 --test 10 --validation 5

The split is fixed by seed order (the last ``--test`` seeds are the test set, the ``--validation``
seeds before them the validation set), so it never changes between runs. ``cohort.json`` records
every case (seed, contrast phase, grid, noise) and the generator's configuration.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lrc.synthetic import PhantomConfig, make_cohort, write_manifest


def parse_seeds(text: str) -> list[int]:
    """``"0-39"``, ``"3,5,8-10"`` -> a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        seeds.update(range(int(first), int(last or first) + 1))
    return sorted(seeds)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"128,128,48"`` or ``"128x128x48"`` -> (x, y, z)."""
    x, y, z = (int(v) for v in text.replace("x", ",").split(","))
    return (x, y, z)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/out/cohort"), help="output folder")
    parser.add_argument("--seeds", default="0-39", help="seeds, e.g. 0-39 or 0,2,5-9")
    parser.add_argument("--shape", default="128,128,48", help="voxels x,y,z at the nominal spacing")
    parser.add_argument("--spacing", default="2,2,4", help="nominal spacing in mm, x,y,z")
    parser.add_argument("--fixed-grid", action="store_true", help="keep shape and spacing (no thickness variation)")
    parser.add_argument("--validation", type=int, default=0, help="number of validation cases")
    parser.add_argument("--test", type=int, default=0, help="number of test cases")
    args = parser.parse_args()

    seeds = parse_seeds(args.seeds)
    sx, sy, sz = (float(v) for v in args.spacing.split(","))
    config = PhantomConfig(shape=parse_shape(args.shape), spacing=(sx, sy, sz))
    if args.fixed_grid:
        config = PhantomConfig(shape=config.shape, spacing=config.spacing, slice_thickness=None)
    if args.validation + args.test >= len(seeds):
        parser.error(f"{len(seeds)} seeds leave no training case after {args.validation} + {args.test}")

    start = time.perf_counter()
    cases = make_cohort(seeds, args.out, config)
    elapsed = time.perf_counter() - start
    n_train = len(cases) - args.validation - args.test
    train, rest = cases[:n_train], cases[n_train:]
    validation, test = rest[: args.validation], rest[args.validation :]
    manifest = write_manifest(args.out / "manifest.json", train, validation, test, config=config)
    (args.out / "cohort.json").write_text(json.dumps({"config": config.to_json(), "cases": cases}, indent=2) + "\n")
    each = elapsed / len(cases)
    print(f"{len(cases)} phantoms in {elapsed:.1f} s ({each:.2f} s each) written to {args.out.resolve()}")
    print(f"manifest: {manifest.resolve()} ({len(train)} train, {len(validation)} validation, {len(test)} test)")


if __name__ == "__main__":
    main()
