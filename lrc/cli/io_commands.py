"""``lrc info`` and ``lrc convert``: image I/O from the command line (no torch, no MONAI)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from lrc.cli.progress import QuietFlag, feedback
from lrc.writers import DICOM_SEG, NIFTI, RTSTRUCT, WriteOptions, Writer

app = typer.Typer()

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
TiltFlag = Annotated[bool, typer.Option("--correct-tilt", help="Resample gantry-tilted stacks instead of refusing.")]


def _series_text(text: str | None) -> str | None:
    """``--series`` as given, refused when it can be neither an index nor a UID (empty, negative)."""
    if text is not None and (not text.strip() or text.strip().startswith("-")):
        raise typer.BadParameter(f"an index from 0 (as 'lrc info' lists it) or a SeriesInstanceUID, got {text!r}")
    return text


SeriesOption = Annotated[
    str | None,
    typer.Option(
        help="Which series of the input: its index as 'lrc info' lists it, or its SeriesInstanceUID "
        "[default: the input must hold one series].",
        callback=_series_text,
    ),
]


def series_choice(text: str | None) -> int | str | None:
    """``--series``: an index (digits only) or a SeriesInstanceUID."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


class Overlap(StrEnum):
    """How overlapping SEG segments become one label map."""

    error = "error"
    first = "first"
    last = "last"


# DICOM label objects ``convert --format`` writes, by the names it takes: each a writer and its options.
LABEL_OBJECTS: dict[str, tuple[Writer, WriteOptions]] = {
    "seg": (DICOM_SEG, WriteOptions()),
    "seg-labelmap": (DICOM_SEG, WriteOptions(segmentation_type="labelmap")),
    RTSTRUCT.name: (RTSTRUCT, WriteOptions()),
}
# The choices of --format (mypy cannot see members made at run time).
LabelFormat = StrEnum("LabelFormat", {name: name for name in LABEL_OBJECTS})  # type: ignore[misc]
DEFAULT_LABEL_FORMAT = LabelFormat("seg")


@app.command()
def info(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders, zips or NIfTI files.")],
    as_json: JsonFlag = False,
    correct_tilt: TiltFlag = False,
) -> None:
    """Describe every series found: its index (for --series), modality, shape, spacing, geometry, UIDs, warnings.

    Exits with 1 when some series could not be read, 2 when none could.
    """
    from lrc.io import ImageIOError, ReadOptions, read_images

    try:
        result = read_images(paths, ReadOptions(correct_tilt=correct_tilt))
    except ImageIOError as exc:
        fail(exc, as_json)
    from lrc.io.summary import summarize

    report = {
        "series": [{"index": i, **summarize(v)} for i, v in enumerate(result.volumes)],
        "errors": [error_json(e) for e in result.errors],
        "notes": result.notes,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if result.errors:
        raise typer.Exit(1 if result.volumes else 2)  # 2: nothing of the input could be read


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="DICOM series (file, folder, zip), DICOM SEG, or NIfTI label map.")],
    output: Annotated[Path, typer.Argument(help="Output: .nii/.nii.gz, or .dcm for a SEG/RTSTRUCT.")],
    reference: Annotated[Path | None, typer.Option(help="The image series a SEG or label map belongs to.")] = None,
    labels: Annotated[Path | None, typer.Option(help='Label table JSON ({"1": "liver", ...}).')] = None,
    overlap: Annotated[
        Overlap, typer.Option(help="Overlapping SEG segments: refuse, or lower/higher number wins.")
    ] = Overlap.error,
    fmt: Annotated[LabelFormat, typer.Option("--format", help="DICOM output object.")] = DEFAULT_LABEL_FORMAT,
    series: SeriesOption = None,
    correct_tilt: TiltFlag = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert a DICOM series (or a DICOM SEG with --reference) to NIfTI, or a label map to DICOM SEG/RTSTRUCT.

    ``--series`` picks the image series: of SOURCE when it is an image, else of ``--reference``.
    """
    from lrc.io import ReadOptions

    options = ReadOptions(correct_tilt=correct_tilt)
    chosen = series_choice(series)
    try:
        with feedback(quiet or as_json) as shown:
            stage = shown.stage(f"converting {source.name} to {output.name}")
            written, volume = _convert(source, output, reference, labels, overlap, fmt, options, chosen)
            stage.done()
    except (ValueError, OSError) as exc:  # ImageIOError, a bad --labels table, an output that cannot be written
        fail(exc, as_json)
    from lrc.io.summary import summarize

    if as_json:
        typer.echo(json.dumps({"output": str(written), "series": summarize(volume)}, indent=2))
    else:
        typer.echo(
            f"wrote {written} ({'x'.join(map(str, volume.shape))}, spacing "
            f"{', '.join(f'{s:.3f}' for s in volume.spacing)} mm)"
        )
        for warning in volume.warnings:
            typer.echo(f"  warning: {warning}", err=True)


def _convert(
    source: Path,
    output: Path,
    reference: Path | None,
    labels: Path | None,
    overlap: Overlap,
    fmt: LabelFormat,
    options: Any,
    chosen: int | str | None,
) -> tuple[Path, Any]:
    """What ``lrc convert`` writes: the written path and the volume it holds."""
    import numpy as np

    from lrc.io import read_volume
    from lrc.io.label_maps import check_label_map
    from lrc.io.labels import LabelTable
    from lrc.io.nifti import is_nifti_path
    from lrc.io.seg import is_seg_file

    if is_nifti_path(output):
        image_ref = read_volume(reference, options, chosen) if reference else None
        if is_seg_file(source):
            from lrc.io.seg import read_seg

            masks = read_seg(source, image_ref)
            volume = masks.label_map(overlap=overlap.value)
            sidecar = _sidecar(output)
            sidecar.write_text(json.dumps(masks.table.to_json(), indent=2))
        else:
            volume = read_volume(source, options, chosen)
        written = NIFTI.write(volume, output)
    elif output.suffix.lower() == LABEL_OBJECTS[fmt.value][0].extension:
        if reference is None:
            raise typer.BadParameter(
                "a DICOM SEG/RTSTRUCT needs --reference (the image series)", param_hint="'--reference'"
            )
        image_ref = read_volume(reference, options, chosen)
        label_map = check_label_map(read_volume(source), source.name)
        table = (
            LabelTable.from_json(labels)
            if labels
            else LabelTable.from_names({int(v): f"label {int(v)}" for v in np.unique(label_map.array) if v})
        )
        writer, write_options = LABEL_OBJECTS[fmt.value]
        written = writer.write(label_map, output, image_ref, table, write_options)
        volume = label_map
    else:
        raise typer.BadParameter(f"{output.name}: output must end in .nii, .nii.gz or .dcm", param_hint="'OUTPUT'")
    return written, volume


def _sidecar(output: Path) -> Path:
    name = output.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else output.stem
    return output.with_name(stem + ".labels.json")


def error_json(exc: Exception) -> dict[str, Any]:
    return {"error": type(exc).__name__, "kind": getattr(exc, "kind", None), "message": str(exc)}


def fail(exc: Exception, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps(error_json(exc), indent=2))
    else:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _print_report(report: dict[str, Any]) -> None:
    for series in report["series"]:
        typer.echo(f"[{series['index']}] {series['modality']} {series.get('description') or ''}".rstrip())
        typer.echo(
            f"    shape {series['shape']}  spacing {[round(s, 4) for s in series['spacing']]} mm  "
            f"orientation {series['orientation']}"
        )
        typer.echo(f"    origin {[round(o, 2) for o in series['origin']]} (RAS mm)  slices {series['slice_count']}")
        for key, value in series["uids"].items():
            if value:
                typer.echo(f"    {key}: {value}")
        for warning in series["warnings"]:
            typer.echo(f"    warning: {warning}")
    for error in report["errors"]:
        typer.echo(f"error: {error['message']}", err=True)
    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)
