"""``lrc pacs``: find a cohort in a PACS, bring it into the service, push a result back by hand.

The PACS is reached by DIMSE (C-FIND, C-GET) as ``--ae-title``, which the PACS must know. The
service is reached over HTTP (``--api-url``, ``--api-key``, or ``LRC_GATEWAY_API_URL`` /
``LRC_GATEWAY_API_KEY``). pynetdicom and httpx are imported inside the commands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

pacs_app = typer.Typer(no_args_is_help=True, help="Find a cohort in a PACS, import it, push results.")

PacsOption = Annotated[str, typer.Option("--pacs", help="The PACS: AE@HOST:PORT.", metavar="AE@HOST:PORT")]
AeOption = Annotated[str, typer.Option("--ae-title", help="Our AE title, known to the PACS.")]
ModalityOption = Annotated[str | None, typer.Option(help="Modality, e.g. CT.")]
SinceOption = Annotated[dt.datetime | None, typer.Option(help="Studies on or after this date.", formats=["%Y-%m-%d"])]
UntilOption = Annotated[dt.datetime | None, typer.Option(help="Studies on or before this date.", formats=["%Y-%m-%d"])]
DescriptionOption = Annotated[str | None, typer.Option(help="Series description, DICOM wildcards (*abd*).")]
ApiUrlOption = Annotated[str, typer.Option("--api-url", envvar="LRC_GATEWAY_API_URL", help="The lrc service.")]
ApiKeyOption = Annotated[str, typer.Option("--api-key", envvar="LRC_GATEWAY_API_KEY", help="API key (submitter).")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@contextmanager
def _service(api_url: str, api_key: str, timeout: float) -> Iterator[tuple[Any, Path]]:
    """A client of the lrc service and a scratch folder; a gateway error becomes a clean exit 1."""
    from gateway.api_client import ServiceClient
    from gateway.errors import GatewayError

    with tempfile.TemporaryDirectory(prefix="lrc-pacs-") as work:
        client = ServiceClient(api_url, api_key, timeout, Path(work))
        try:
            yield client, Path(work)
        except GatewayError as exc:
            raise _fail(exc) from exc
        finally:
            client.close()


def _destination(text: str) -> Any:
    from gateway.settings import parse_destination

    try:
        return parse_destination(text)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _find(pacs: str, ae_title: str, **filters: Any) -> tuple[Any, list[Any]]:
    from gateway.errors import GatewayError
    from gateway.pacs import DimsePacs

    node = DimsePacs(ae_title, _destination(pacs))
    since, until = filters.pop("since"), filters.pop("until")
    try:
        dates = {"since": since.date() if since else None, "until": until.date() if until else None}
        found = node.find_series(**dates, **filters)
    except GatewayError as exc:
        raise _fail(exc) from exc
    return node, found


@pacs_app.command("find")
def find(
    pacs: PacsOption,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
) -> None:
    """List matching series, one JSON object a line."""
    _, found = _find(pacs, ae_title, modality=modality, since=since, until=until, description=description)
    for match in found:
        typer.echo(json.dumps(dataclasses.asdict(match)))


@pacs_app.command("import")
def import_(
    pacs: PacsOption,
    api_url: ApiUrlOption,
    api_key: ApiKeyOption,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
    limit: Annotated[int, typer.Option(help="At most this many series.", min=1)] = 1000,
) -> None:
    """Retrieve matching series (C-GET) and store them in the service; one JSON line per series."""
    from gateway.cohort import import_cohort

    node, found = _find(pacs, ae_title, modality=modality, since=since, until=until, description=description)
    with _service(api_url, api_key, 600) as (client, work):
        for imported in import_cohort(node, client, found[:limit], work):
            typer.echo(json.dumps(dataclasses.asdict(imported)))


@pacs_app.command("push")
def push(
    segmentation_id: Annotated[str, typer.Argument(help="The segmentation whose result to send.")],
    api_url: ApiUrlOption,
    api_key: ApiKeyOption,
    destination: Annotated[str | None, typer.Option(help="C-STORE to AE@HOST:PORT.")] = None,
    stow_url: Annotated[str | None, typer.Option("--stow-url", help="STOW-RS to this DICOMweb URL.")] = None,
    ae_title: AeOption = "LRC",
    fmt: Annotated[str, typer.Option("--format", help="dicom-seg or rtstruct.")] = "dicom-seg",
) -> None:
    """Send a finished segmentation's DICOM SEG (or RTSTRUCT) to a PACS; prints its SOP Instance UID."""
    from gateway.cohort import push_result
    from gateway.delivery import CStoreDelivery, Delivery, StowDelivery

    if (destination is None) == (stow_url is None):
        typer.echo("error: give exactly one of --destination and --stow-url", err=True)
        raise typer.Exit(2)
    if fmt not in ("dicom-seg", "rtstruct"):
        typer.echo("error: --format is dicom-seg or rtstruct", err=True)
        raise typer.Exit(2)
    delivery: Delivery = (
        CStoreDelivery(ae_title, _destination(destination), 60) if destination else StowDelivery(str(stow_url), 120)
    )
    with _service(api_url, api_key, 120) as (client, work):
        typer.echo(push_result(client, delivery, segmentation_id, fmt, work))


@pacs_app.command("dataset")
def dataset(
    pacs: PacsOption,
    name: Annotated[str, typer.Option(help="Name of the new dataset.")],
    api_url: ApiUrlOption,
    api_key: ApiKeyOption,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
    limit: Annotated[int, typer.Option(help="At most this many series.", min=1)] = 1000,
) -> None:
    """Make a fine-tuning dataset of matching series and the DICOM SEGs that reference them; prints it as JSON."""
    from gateway.cohort import import_dataset

    node, found = _find(pacs, ae_title, modality=modality, since=since, until=until, description=description)
    with _service(api_url, api_key, 600) as (client, work):
        typer.echo(json.dumps(import_dataset(node, client, name, found[:limit], work)))
