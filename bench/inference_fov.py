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

from quality import PRESETS, TEST_SEEDS, WORK, phantom, save

NAME = re.compile(r"ft-(?P<tag>.+)-(?P<method>scratch|moco\+lrc|moco|lrc|supervised\+lrc)-k(?P<k>\d+)-s(?P<seed>\d+)$")
MODES = ("whole", "tiles")


def score(model: Path, preset: dict[str, Any], tests: list[str]) -> list[dict[str, Any]]:
    """Mean Dice of one fine-tuned model, whole slices and tiles, on its training and test volumes."""
    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.models.store import read_card
    from lrc.synthetic import ORGANS

    found = NAME.match(model.name)
    assert found is not None
    k, seed = int(found["k"]), int(found["seed"])
    sets = {"train": [phantom(100 + 10 * seed + i) for i in range(k)]}
    sets |= {test: [phantom(TEST_SEEDS[test] + i) for i in range(preset["tests"])] for test in tests}
    records = []
    for mode in MODES:
        tile = int(read_card(model).training["patch"][0]) if mode == "tiles" else None
        predictor = Predictor.from_dir(model, device="cpu", tile=tile)
        for name, cases in sets.items():
            dice = [mean_dice(evaluate(predictor.predict(i), lab, ORGANS, distances=False)) for i, lab in cases]
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
                }
            )
    return records


def summarize(runs: list[dict[str, Any]], scratch: str) -> str:
    """Markdown: mean Dice (3 seeds) per arm, set and mode, and the paired gap to ``scratch`` on whole slices."""
    reference = {
        (r["k"], r["seed"], r["set"]): r["mean_dice"] for r in runs if r["tag"] == scratch and r["mode"] == "whole"
    }
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["tag"], r["method"], r["k"], r["set"], r["mode"]), []).append(r)
    lines = [
        f"| arm | k | volumes | inference | mean Dice | vs {scratch}, whole slices (paired) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for (tag, method, k, name, mode), group in sorted(groups.items()):
        values = {g["seed"]: g["mean_dice"] for g in group}
        gaps = [v - reference[(k, s, name)] for s, v in values.items() if (k, s, name) in reference]
        gap = f"{statistics.mean(gaps):+.3f} ({sum(x > 0 for x in gaps)}/{len(gaps)} ahead)" if gaps else ""
        shown = ", ".join(f"{values[s]:.3f}" for s in sorted(values))
        lines.append(
            f"| {tag} ({method}) | {k} | {name} | {mode} | {statistics.mean(values.values()):.3f} | {gap} | {shown} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", nargs="+", default=[], help="Arms (quality.py tags) whose models to score.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    parser.add_argument("--test", nargs="+", choices=sorted(TEST_SEEDS), default=["dev", "final"])
    parser.add_argument("--scratch", default="scratch-noflip", help="The arm the others are paired with.")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="Only print the table.")
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
            runs.extend(score(model, PRESETS[args.preset], args.test))
            save(runs, args.results)
            print(model.name, flush=True)
    print(summarize(runs, args.scratch))


if __name__ == "__main__":
    main()
