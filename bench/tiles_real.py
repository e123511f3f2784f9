"""Whole slices or patch-sized tiles on the real CTs: Dice and model time of 2D segmentation models.

``bench/inference_fov.py`` asks the question on the synthetic cohort; this asks it where users are:
the real CTs of ``shared/data`` (subject A, TotalSegmentator's abdominal CT, 3 mm; subject C, a
Siemens CT, 0.98 mm x 2 mm, 20 slices), each with TotalSegmentator's silver labels. Every model
(default: the shipped starter model) predicts each CT whole-slice and over half-overlapping tiles of
its training patch (or ``--tile``); Dice per organ against the silver labels, matched by name, and
the seconds of the model stage (best of ``--repeats``) for both.

    python bench/tiles_real.py [--models DIR ...] [--results bench/results/tiles_real.json]
    python bench/tiles_real.py --summary --results bench/results/tiles_real.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STARTER = HERE.parent / "lrc" / "assets" / "starter_ct_abdomen"
MODES = ("whole", "tiles")


def subjects(data: Path) -> dict[str, tuple[Any, Any]]:
    """The real CTs with their silver label maps: ``{name: (image, labels)}``."""
    from lrc.io import read_nifti, read_volume

    abdomen, siemens = data / "nifti/totalseg_ct_abdomen", data / "dicom/ct_series_totalseg"
    return {
        "A": (
            read_nifti(abdomen / "example_ct.nii.gz", modality="CT"),
            read_nifti(abdomen / "example_seg_fast_force_split.nii.gz"),
        ),
        "C": (read_volume(sorted(siemens.glob("CT.*"))), read_nifti(siemens / "example_seg_dicom.nii.gz")),
    }


def silver_table(data: Path) -> Any:
    """TotalSegmentator's ``total`` label table (its values as its label maps write them)."""
    from lrc.io.labels import LabelTable

    table = json.loads((data / "nifti/totalsegmentator_class_map.json").read_text())["total"]
    return LabelTable.from_names({int(value): name for value, name in table.items()})


def score(model: Path, cases: dict[str, tuple[Any, Any]], data: Path, tile: int | None, repeats: int) -> list[dict]:
    """One record per case and inference mode: Dice per organ, mean Dice, model-stage seconds (best of ``repeats``)."""
    from lrc.evaluate import evaluate, mean_dice
    from lrc.infer import Predictor
    from lrc.infer.stages import StageTimes
    from lrc.label_match import match_labels
    from lrc.model_dirs.store import read_card

    card = read_card(model)
    silver = match_labels(card.labels, silver_table(data))  # the model's organs in TotalSegmentator's values
    predictors = {
        "whole": Predictor.from_dir(model, device="cpu", tile="slice"),
        "tiles": Predictor.from_dir(model, device="cpu", tile=tile or "patch"),
    }
    records = []
    for case, (image, reference) in cases.items():
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        predictions = {}
        for _ in range(repeats):  # the modes interleaved: a shared machine's load swings within a minute
            for mode in MODES:
                times = StageTimes()
                predictions[mode] = predictors[mode].predict(image, times)
                seconds[mode].append(times.seconds["model"])
        for mode in MODES:
            metrics = evaluate(predictions[mode], reference, silver, distances=False)
            records.append(
                {
                    "model": model.name,
                    "case": case,
                    "mode": mode,
                    "tile": predictors[mode].tile,
                    "dice": {name: m["dice"] for name, m in metrics.items()},
                    "mean_dice": mean_dice(metrics),
                    "model_seconds": min(seconds[mode]),
                    "model_seconds_all": seconds[mode],
                    "training": card.training.get("config"),
                }
            )
            print(json.dumps({k: records[-1][k] for k in ("model", "case", "mode", "mean_dice", "model_seconds")}))
    return records


def summarize(runs: list[dict[str, Any]]) -> str:
    """Markdown: per model and case, Dice per organ whole and tiled, and the model stage's time ratio."""
    organs = sorted({name for r in runs for name in r["dice"]})
    lines = [
        f"| model | case | inference | mean Dice | {' | '.join(organs)} | model s | tiles / whole |",
        "|---|---|---|---|" + "---|" * len(organs) + "---|---|",
    ]
    for r in runs:
        whole = next(w for w in runs if (w["model"], w["case"], w["mode"]) == (r["model"], r["case"], "whole"))
        ratio = f"{r['model_seconds'] / whole['model_seconds']:.2f}x" if r["mode"] == "tiles" else ""
        shown = " | ".join(f"{r['dice'][o]:.3f}" if o in r["dice"] else "" for o in organs)
        mode = f"tiles of {r['tile']}" if r["mode"] == "tiles" else "whole slices"
        seconds = f"{r['model_seconds']:.2f}"
        lines.append(f"| {r['model']} | {r['case']} | {mode} | {r['mean_dice']:.3f} | {shown} | {seconds} | {ratio} |")
    gaps = [
        r["mean_dice"] - w["mean_dice"]
        for r in runs
        for w in runs
        if r["mode"] == "tiles" and w["mode"] == "whole" and (r["model"], r["case"]) == (w["model"], w["case"])
    ]
    if gaps:
        lines.append(f"\nTiles minus whole slices, mean Dice: {statistics.mean(gaps):+.3f} ({len(gaps)} pairs)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=[STARTER], help="2D segmentation model dirs.")
    parser.add_argument("--shared-data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--tile", type=int, default=None, help="Tile side (default: each model's training patch).")
    parser.add_argument("--repeats", type=int, default=3, help="Predictions per case and mode (best time kept).")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "tiles_real.json")
    parser.add_argument("--summary", action="store_true", help="Only print the table of --results.")
    args = parser.parse_args()
    if not args.summary:
        import torch

        cases = subjects(args.shared_data)
        runs = [r for model in args.models for r in score(model, cases, args.shared_data, args.tile, args.repeats)]
        machine = {"processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
        args.results.write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    print(summarize(json.loads(args.results.read_text())["runs"]))


if __name__ == "__main__":
    main()
