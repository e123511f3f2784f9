"""``lrc pacs``: find a cohort in a PACS, bring it into the service, push a result back by hand.

The PACS is reached by DIMSE (``--pacs``: C-FIND, C-GET or with ``--move`` C-MOVE) as
``--ae-title``, which the PACS must know, or by DICOMweb (``--dicomweb URL``: QIDO-RS, WADO-RS). The
service is reached over HTTP (``--api-url`` or ``LRC_GATEWAY_API_URL``; the key from
``LRC_GATEWAY_API_KEY`` or ``--api-key-file``, see :mod:`cli.api_keys`). ``--deidentify``
uploads de-identified copies and keeps the mapping in ``--mapping``, which ``push --mapping`` uses
to give a result its original identifiers back. pynetdicom and httpx are imported inside the commands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_keys import ApiKeyFile, ApiKeyFlag, resolve_api_key
from lrc import log_privacy
from lrc.writers import DICOM_SEG, writer_names

pacs_app = typer.Typer(no_args_is_help=True, help="Find a cohort in a PACS, import it, push results.")
PUSHED = " or ".join(writer_names(needs_dicom=True))  # the formats a PACS takes


def _url(value: str | None) -> str | None:
    """An http(s) URL option, refused before anything is contacted."""
    from gateway.settings import check_http_url

    try:
        return check_http_url(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _ae_title(value: str) -> str:
    """``--ae-title``: an AE title as PS3.5 allows it."""
    from gateway.settings import check_ae_title

    try:
        return check_ae_title(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


PacsOption = Annotated[
    str | None, typer.Option("--pacs", help="The PACS by DIMSE: AE@HOST:PORT.", metavar="AE@HOST:PORT")
]
DicomwebOption = Annotated[
    str | None,
    typer.Option(
        "--dicomweb", help="The PACS by DICOMweb: its base URL (QIDO-RS, WADO-RS).", metavar="URL", callback=_url
    ),
]
MoveOption = Annotated[
    int | None,
    typer.Option(
        "--move",
        help="Retrieve by C-MOVE to our AE title, listening on this port (the PACS must know it); default C-GET.",
        metavar="PORT",
        min=1,
        max=65535,
    ),
]
DeidentifyOption = Annotated[bool, typer.Option("--deidentify", help="Upload de-identified copies (PS3.15 basic).")]
MappingOption = Annotated[
    Path, typer.Option("--mapping", help="The pseudonym mapping (SQLite; keep it private).", metavar="FILE")
]
AeOption = Annotated[str, typer.Option("--ae-title", help="Our AE title, known to the PACS.", callback=_ae_title)]
ModalityOption = Annotated[str | None, typer.Option(help="Modality, e.g. CT.")]
SinceOption = Annotated[dt.datetime | None, typer.Option(help="Studies on or after this date.", formats=["%Y-%m-%d"])]
UntilOption = Annotated[dt.datetime | None, typer.Option(help="Studies on or before this date.", formats=["%Y-%m-%d"])]
DescriptionOption = Annotated[str | None, typer.Option(help="Series description, DICOM wildcards (*abd*).")]
ApiUrlOption = Annotated[
    str, typer.Option("--api-url", envvar="LRC_GATEWAY_API_URL", help="The lrc service.", callback=_url)
]
DEFAULT_MAPPING = Path("lrc-pseudonyms.sqlite")


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@contextmanager
def _service(
    api_url: str, api_key: str | None, api_key_file: Path | None, timeout: float
) -> Iterator[tuple[Any, Path]]:
    """A client of the lrc service and a scratch folder; a gateway error becomes a clean exit 1."""
    from gateway.api_client import ServiceClient
    from gateway.errors import GatewayError

    api_key = resolve_api_key(api_key, api_key_file)
    if not api_key:
        typer.echo("error: no API key: set LRC_GATEWAY_API_KEY or give --api-key-file", err=True)
        raise typer.Exit(2)
    log_privacy.protect(api_key)
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


def _node(pacs: str | None, dicomweb: str | None, ae_title: str, move: int | None) -> Any:
    from gateway.dicomweb_pacs import DicomwebPacs
    from gateway.pacs import DimsePacs

    if (pacs is None) == (dicomweb is None):
        typer.echo("error: give exactly one of --pacs AE@HOST:PORT and --dicomweb URL", err=True)
        raise typer.Exit(2)
    if dicomweb is not None:
        if move is not None:
            typer.echo("error: --move is for a DIMSE PACS (--pacs)", err=True)
            raise typer.Exit(2)
        return DicomwebPacs(dicomweb)
    return DimsePacs(ae_title, _destination(str(pacs)), move_port=move)


@contextmanager
def _pseudonyms(deidentify: bool, mapping: Path) -> Iterator[Any]:
    """The pseudonym mapping when asked for (``--deidentify``), else None."""
    if not deidentify:
        yield None
        return
    from gateway.deidentify import Pseudonyms
    from gateway.errors import InvalidConfig

    try:
        pseudonyms = Pseudonyms(mapping)
    except InvalidConfig as exc:
        typer.echo(f"error: the pseudonym mapping (--mapping): {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        yield pseudonyms
    finally:
        pseudonyms.close()


def _find(node: Any, **filters: Any) -> list[Any]:
    from gateway.errors import GatewayError

    since, until = filters.pop("since"), filters.pop("until")
    try:
        dates = {"since": since.date() if since else None, "until": until.date() if until else None}
        found: list[Any] = node.find_series(**dates, **filters)
    except GatewayError as exc:
        raise _fail(exc) from exc
    return found


@pacs_app.command("find")
def find(
    pacs: PacsOption = None,
    dicomweb: DicomwebOption = None,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
) -> None:
    """List matching series, one JSON object a line."""
    node = _node(pacs, dicomweb, ae_title, None)
    found = _find(node, modality=modality, since=since, until=until, description=description)
    for match in found:
        typer.echo(json.dumps(dataclasses.asdict(match)))


@pacs_app.command("import")
def import_(
    api_url: ApiUrlOption,
    api_key: ApiKeyFlag = None,
    api_key_file: ApiKeyFile = None,
    pacs: PacsOption = None,
    dicomweb: DicomwebOption = None,
    move: MoveOption = None,
    deidentify: DeidentifyOption = False,
    mapping: MappingOption = DEFAULT_MAPPING,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
    limit: Annotated[int, typer.Option(help="At most this many series.", min=1)] = 1000,
) -> None:
    """Retrieve matching series (C-GET, C-MOVE or WADO-RS) and store them in the service; one JSON line per series."""
    from gateway.cohort import import_cohort

    node = _node(pacs, dicomweb, ae_title, move)
    found = _find(node, modality=modality, since=since, until=until, description=description)
    with (
        _pseudonyms(deidentify, mapping) as pseudonyms,
        _service(api_url, api_key, api_key_file, 600) as (client, work),
    ):
        for imported in import_cohort(node, client, found[:limit], work, pseudonyms):
            typer.echo(json.dumps(dataclasses.asdict(imported)))


@pacs_app.command("push")
def push(
    segmentation_id: Annotated[str, typer.Argument(help="The segmentation whose result to send.")],
    api_url: ApiUrlOption,
    api_key: ApiKeyFlag = None,
    api_key_file: ApiKeyFile = None,
    destination: Annotated[str | None, typer.Option(help="C-STORE to AE@HOST:PORT.")] = None,
    stow_url: Annotated[
        str | None, typer.Option("--stow-url", help="STOW-RS to this DICOMweb URL.", callback=_url)
    ] = None,
    ae_title: AeOption = "LRC",
    fmt: Annotated[str, typer.Option("--format", help=f"{PUSHED}.")] = DICOM_SEG.name,
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="Re-identify with this pseudonym mapping (from --deidentify).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for a result still being made or a service that does not answer.", min=0),
    ] = 300.0,
) -> None:
    """Send a segmentation's DICOM SEG (or RTSTRUCT) to a PACS once it is ready; prints its SOP Instance UID."""
    from gateway.cohort import push_result
    from gateway.delivery import CStoreDelivery, Delivery, StowDelivery
    from gateway.errors import NotReady, Unreachable

    if (destination is None) == (stow_url is None):
        typer.echo("error: give exactly one of --destination and --stow-url", err=True)
        raise typer.Exit(2)
    if fmt not in writer_names(needs_dicom=True):
        typer.echo(f"error: --format is {PUSHED}", err=True)
        raise typer.Exit(2)
    delivery: Delivery = (
        CStoreDelivery(ae_title, _destination(destination), 60) if destination else StowDelivery(str(stow_url), 120)
    )
    if mapping is not None and not mapping.is_file():
        typer.echo(f"error: no pseudonym mapping at {mapping}", err=True)
        raise typer.Exit(2)
    with (
        _pseudonyms(mapping is not None, mapping or DEFAULT_MAPPING) as pseudonyms,
        _service(api_url, api_key, api_key_file, 120) as (client, work),
    ):
        deadline, pause = time.monotonic() + wait, 0.5
        while True:
            try:
                typer.echo(push_result(client, delivery, segmentation_id, fmt, work, pseudonyms))
                return
            except KeyError as exc:  # the result's study is not in the mapping
                raise _fail(exc) from exc
            # Still being made, or the service did not answer: the poll interval reaches its 5 s
            # keep-alive, so a reused connection may be dropped. Refusals (a wrong key) and
            # delivery failures are reported at once.
            except (NotReady, Unreachable):
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(5.0, 2 * pause)


@pacs_app.command("dataset")
def dataset(
    name: Annotated[str, typer.Option(help="Name of the new dataset.")],
    api_url: ApiUrlOption,
    api_key: ApiKeyFlag = None,
    api_key_file: ApiKeyFile = None,
    pacs: PacsOption = None,
    dicomweb: DicomwebOption = None,
    move: MoveOption = None,
    deidentify: DeidentifyOption = False,
    mapping: MappingOption = DEFAULT_MAPPING,
    ae_title: AeOption = "LRC",
    modality: ModalityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    description: DescriptionOption = None,
    limit: Annotated[int, typer.Option(help="At most this many series.", min=1)] = 1000,
) -> None:
    """Make a fine-tuning dataset of matching series and the SEGs or RTSTRUCTs that reference them; prints it."""
    from gateway.cohort import import_dataset

    node = _node(pacs, dicomweb, ae_title, move)
    found = _find(node, modality=modality, since=since, until=until, description=description)
    with (
        _pseudonyms(deidentify, mapping) as pseudonyms,
        _service(api_url, api_key, api_key_file, 600) as (client, work),
    ):
        typer.echo(json.dumps(import_dataset(node, client, name, found[:limit], work, pseudonyms)))
