"""``lrc pretrain``, ``finetune``, ``segment`` and ``evaluate``: the learning core from the command line."""

from __future__ import annotations

import functools
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from lrc.cli.config_options import config_from_cli, config_options
from lrc.cli.io_commands import JsonFlag, SeriesOption, error_json, fail, series_choice
from lrc.cli.progress import Feedback, QuietFlag, Stage, feedback
from lrc.train.finetune_config import FinetuneConfig
from lrc.train.pretrain_config import PretrainConfig
from lrc.writers import NIFTI, WRITERS, WriteOptions

app = typer.Typer()


def _device_name(name: str) -> str:
    """``--device`` spelled as a device (whether this machine has it is checked when the command starts)."""
    from lrc.device import check_device_name

    try:
        return check_device_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].", callback=_device_name)]
TileOption = Annotated[
    str,
    typer.Option(
        help="2D models: 'model' as its card says (tiles for models fine-tuned from pre-trained weights); 'slice' "
        "whole slices; 'patch' half-overlapping tiles of the training patch, as nnU-Net predicts (often better "
        "Dice, ~3x the model time); or a tile side in pixels (multiple of 16)."
    ),
]


def _tile(option: str) -> int | str | None:
    """``--tile`` of ``segment`` and ``evaluate`` as :class:`lrc.infer.Predictor` takes it."""
    if option in ("model", "slice", "patch"):
        return option
    try:
        return int(option)
    except ValueError:
        raise ValueError(f"--tile must be 'model', 'slice', 'patch' or a side in pixels, got {option!r}") from None


# Segmentation output formats: the writers' names (mypy cannot see members made at run time).
OutputFormat = StrEnum("OutputFormat", {name: name for name in WRITERS})  # type: ignore[misc]
DEFAULT_FORMAT = OutputFormat(NIFTI.name)


@app.command()
@config_options(PretrainConfig, before="device")
def pretrain(
    images: Annotated[list[Path], typer.Option("--images", help="Unlabeled scans: DICOM folders/zips or NIfTI.")],
    out: Annotated[Path, typer.Option(help="Model directory to write.")],
    more: Annotated[list[Path] | None, typer.Argument(help="More scans (so that --images A B C works).")] = None,
    device: DeviceOption = "auto",
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    **settings: Any,
) -> None:
    """Self-supervised pre-training (MoCo v2, LRC or both) on unlabeled scans."""
    from lrc.io import ImageIOError
    from lrc.train.pretrain import pretrain as run

    try:
        settings["view_size"] = min(settings["view_size"], settings["canvas"])
        config = config_from_cli(PretrainConfig, settings)
        _ready_to_train(out, device)
        with feedback(quiet or as_json) as shown:
            volumes, skipped = _read_all(shown, [*images, *(more or [])])
        if not volumes:
            raise ValueError(f"no readable image in --images: {'; '.join(skipped)}")
        if not as_json:
            for reason in skipped:
                typer.echo(f"warning: skipped {reason}", err=True)
        with feedback(quiet or as_json) as shown:
            stage = shown.stage(f"pre-training ({config.method})", config.steps)
            written = run(volumes, out, config, device=device, progress=lambda step, m: stage.update(step, **m))
    except (ImageIOError, ValueError, OSError) as exc:  # OSError: an output that cannot be written
        fail(exc, as_json)
    card = json.loads((written / "model.json").read_text())
    _report({"model": str(written), "card": card, "skipped": skipped}, as_json, f"wrote {written}")


@app.command()
@config_options(FinetuneConfig, before="device")
def finetune(
    train: Annotated[Path, typer.Option(help="Manifest JSON: labels, train (and validation) cases.")],
    out: Annotated[Path, typer.Option(help="Model directory to write.")],
    init: Annotated[str, typer.Option(help="'scratch' or a pre-trained model directory.")] = "scratch",
    device: DeviceOption = "auto",
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    **settings: Any,
) -> None:
    """Fine-tune a segmentation model on a few labelled volumes; report held-out Dice."""
    from lrc.io import ImageIOError
    from lrc.manifest import load_manifest
    from lrc.model_dirs import ModelCardError
    from lrc.train.finetune import finetune as run

    try:
        config = config_from_cli(FinetuneConfig, settings)
        _ready_to_train(out, device)
        if init != "scratch":
            _check_init(Path(init))
        with feedback(quiet or as_json) as shown:
            shown.stage("reading the manifest's cases").update(0)
            manifest = load_manifest(train, parts=("train", "validation"))
        with feedback(quiet or as_json) as shown:
            training = shown.stage("fine-tuning", config.steps)
            checking = shown.stage("validation", 1)
            written = run(
                manifest.parts["train"],
                manifest.labels,
                out,
                config,
                validation=manifest.parts["validation"] or None,
                init=None if init == "scratch" else Path(init),
                device=device,
                progress=lambda step, m: training.update(step, **m),
                validating=lambda step, done: checking.update(done, 1, step=step),
            )
    except (ImageIOError, ModelCardError, ValueError, OSError) as exc:  # OSError: an output that cannot be written
        fail(exc, as_json)
    card = json.loads((written / "model.json").read_text())
    metrics = card.get("metrics") or {}
    tile = card.get("inference_tile")
    score = metrics.get("mean_dice")
    held_out = "n/a (no held-out case)" if score is None else f"{score:.3f}"
    _report(
        {"model": str(written), "metrics": metrics, "inference_tile": tile},
        as_json,
        f"wrote {written}; held-out mean Dice {held_out}, predicted "
        + (f"over tiles of {tile} pixels" if tile else "on whole slices"),
    )


@app.command()
def segment(
    source: Annotated[Path, typer.Argument(help="Scan: DICOM file/folder/zip or NIfTI.")],
    model: Annotated[Path, typer.Option(help="Segmentation model directory.")],
    out: Annotated[Path, typer.Option(help="Output file.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = DEFAULT_FORMAT,
    series: SeriesOption = None,
    device: DeviceOption = "auto",
    tile: TileOption = "model",
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Segment one scan; write NIfTI, DICOM SEG or RTSTRUCT on the scan's exact grid."""
    from lrc.infer import Predictor
    from lrc.io import ImageIOError, read_volume
    from lrc.io.atomic import check_output
    from lrc.io.nifti import is_nifti_path
    from lrc.model_dirs import ModelCardError

    try:
        writer = WRITERS[fmt.value]
        if writer is NIFTI and not is_nifti_path(out):
            raise ValueError(f"--out {out.name}: a NIfTI output name ends in .nii or .nii.gz (or give --format)")
        check_output(out)  # before the model runs
        with feedback(quiet or as_json) as shown:
            stage = shown.stage("loading the model")
            predictor = Predictor.from_dir(model, device=device, tile=_tile(tile))
            stage.done()
            stage = shown.stage(f"reading {source.name}")
            image = read_volume(source, series=series_choice(series))
            stage.done()
            slices = shown.stage("segmenting slices", image.shape[2])
            labels = predictor.predict(image, progress=lambda done, total: slices.update(done, total))
            table = predictor.card.labels
            assert table is not None
            stage = shown.stage(f"writing {out.name}")
            written = writer.write(labels, out, image, table, WriteOptions(algorithm_name=model.name))
            stage.done()
    except (ImageIOError, ModelCardError, ValueError, OSError) as exc:
        fail(exc, as_json)
    counts = {table[v].name: int((labels.array == v).sum()) for v in table}
    _report({"output": str(written), "voxels": counts}, as_json, f"wrote {written}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Segmentation model directory.")],
    data: Annotated[Path, typer.Option(help="Manifest JSON with the labelled cases to score.")],
    series: SeriesOption = None,
    device: DeviceOption = "auto",
    tile: TileOption = "model",
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Dice and HD95 per structure on labelled cases (the manifest's test, else validation, else train).

    The model's labels and the manifest's are matched by name (or SNOMED CT code), whatever values
    each side uses; structures only one side has are listed, not scored. ``--series`` picks the
    series of every image whose manifest entry names none.
    """
    from lrc.evaluate import evaluate as score
    from lrc.evaluate import mean_dice, summarize
    from lrc.infer import Predictor
    from lrc.io import ImageIOError
    from lrc.label_match import match_labels
    from lrc.manifest import load_manifest
    from lrc.model_dirs import ModelCardError

    try:
        with feedback(quiet or as_json) as shown:
            predictor = Predictor.from_dir(model, device=device, tile=_tile(tile))
            shown.stage("reading the manifest's cases").update(0)
            parts = ("test", "validation", "train")
            manifest = load_manifest(data, parts=parts, required=None, series=series_choice(series))
            cases = manifest.parts["test"] or manifest.parts["validation"] or manifest.parts["train"]
            assert predictor.card.labels is not None
            labels = match_labels(predictor.card.labels, manifest.labels)
            slices = shown.stage(f"segmenting and scoring {len(cases)} case(s)", sum(c[0].shape[2] for c in cases))
            per_case: list[Any] = []
            before = 0
            for image, label in cases:
                predicted = predictor.predict(image, progress=functools.partial(_shifted, slices, before))
                per_case.append(score(predicted, label, labels))
                before += image.shape[2]
    except (ImageIOError, ModelCardError, ValueError, OSError) as exc:
        fail(exc, as_json)
    summary = summarize(per_case)
    matched = labels.to_json()
    report = {
        "cases": len(per_case),
        "labels": summary,
        "mean_dice": mean_dice(summary),
        "per_case": per_case,
        "matched": matched["matched"],
        "not_scored": {"model_only": matched["model_only"], "reference_only": matched["reference_only"]},
    }
    lines = [f"{len(per_case)} case(s)"]
    for name, m in summary.items():
        pair = matched["matched"][name]
        lines.append(
            f"{name:24s} Dice {_number(m['dice'], 3)}  HD95 {_number(m['hd95'], 1)}"
            f"  (model {pair['model']}, reference {pair['reference']})"
        )
    lines.append(f"mean Dice {_number(report['mean_dice'], 3)}")
    for side, names in (("the model only", labels.model_only), ("the reference only", labels.reference_only)):
        if names:
            lines.append(f"not scored, in {side}: {', '.join(names)}")
    _report(report, as_json, "\n".join(lines))


def _shifted(stage: Stage, before: int, done: int, _: int) -> None:
    stage.update(before + done)


def _read_all(shown: Feedback, paths: list[Path]) -> tuple[list[Any], list[str]]:
    """Every volume of ``paths``, one progress step a path, and why each unreadable series was skipped.

    Raises:
        ImageIOError: a path does not exist or holds nothing readable at all.
    """
    from lrc.io import read_images

    stage = shown.stage("reading the scans", len(paths))
    volumes, skipped = [], []
    for done, path in enumerate(paths, start=1):
        result = read_images([path])
        volumes += result.volumes
        skipped += [str(e) for e in result.errors]
        stage.update(done)
    return volumes, skipped


def _ready_to_train(out: Path, device: str) -> None:
    """What would stop a training at its end, checked at its start: the device, and where the model goes.

    Raises:
        ValueError: a device this machine lacks. OutputError: ``out`` cannot take a model.
    """
    from lrc.device import resolve_device
    from lrc.model_dirs.store import check_model_target

    resolve_device(device)
    check_model_target(out)


def _check_init(init: Path) -> None:
    """``--init`` is a model directory whose card can be read (its weights are checked when loaded).

    Raises:
        ModelCardError: it is not.
    """
    from lrc.model_dirs.store import read_card

    read_card(init)


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _report(payload: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(payload, indent=2) if as_json else text)


__all__ = ["app", "error_json"]
