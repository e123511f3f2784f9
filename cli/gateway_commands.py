"""``lrc gateway``: the DICOM gateway between a PACS and the segmentation service.

Every flag has an ``LRC_GATEWAY_<NAME>`` environment variable; a flag given wins. The gateway's
modules (pynetdicom, httpx) are imported inside the command, so other commands do not pay for them.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.api_keys import ApiKeyFile, ApiKeyFlag, resolve_api_key
from cli.listening import cannot_listen
from lrc import log_privacy

app = typer.Typer()


def _exit_on(stop: threading.Event) -> None:
    def handler(signum: int, _: object) -> None:
        logging.getLogger("gateway").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@app.command()
def gateway(
    ae_title: Annotated[str | None, typer.Option("--ae-title", help="Our AE title (default: LRC).")] = None,
    port: Annotated[int | None, typer.Option(help="DICOM port (default: 11112).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: 0.0.0.0).")] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="The lrc service (default: http://127.0.0.1:8000).")
    ] = None,
    api_key: ApiKeyFlag = None,
    api_key_file: ApiKeyFile = None,
    model: Annotated[str | None, typer.Option(help="Model for series no rule routes (default: production).")] = None,
    destination: Annotated[
        str | None, typer.Option(help="Send results by C-STORE to AE@HOST:PORT.", metavar="AE@HOST:PORT")
    ] = None,
    stow_url: Annotated[str | None, typer.Option("--stow-url", help="Send results by STOW-RS to this URL.")] = None,
    rtstruct: Annotated[bool | None, typer.Option("--rtstruct/--no-rtstruct", help="Send an RTSTRUCT too.")] = None,
    series_timeout: Annotated[
        float | None, typer.Option("--series-timeout", help="Seconds without instances: series complete (default: 30).")
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="YAML routing rules.")] = None,
    allowed_callers: Annotated[
        str | None,
        typer.Option("--allowed-callers", help="Calling AE titles accepted, comma-separated (default: any)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Gateway data (default: .lrc-gateway).")] = None,
    deidentify: Annotated[
        bool | None,
        typer.Option("--deidentify/--no-deidentify", help="De-identify before upload (mapping kept in --data-dir)."),
    ] = None,
) -> None:
    """Receive series from a PACS (C-STORE), segment them with the service, send the DICOM SEG back."""
    from pydantic import ValidationError

    from gateway.errors import InvalidConfig
    from gateway.runner import Gateway
    from gateway.settings import GatewaySettings

    api_key = resolve_api_key(api_key, api_key_file) or None
    log_privacy.protect(api_key)
    given: dict[str, Any] = {
        "ae_title": ae_title,
        "port": port,
        "host": host,
        "api_url": api_url,
        "api_key": api_key,
        "model": model,
        "destination": destination,
        "stow_url": stow_url,
        "rtstruct": rtstruct,
        "series_timeout": series_timeout,
        "rules": rules,
        "allowed_callers": allowed_callers,
        "data_dir": data_dir,
        "deidentify": deidentify,
    }
    try:
        settings = GatewaySettings(**{k: v for k, v in given.items() if v is not None})
        runner = Gateway(settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: invalid gateway settings: {problems}", err=True)
        raise typer.Exit(2) from exc
    except InvalidConfig as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not settings.api_key:
        logging.getLogger("gateway").warning(
            "no API key (LRC_GATEWAY_API_KEY, --api-key-file): the service will refuse"
        )
    stop = threading.Event()
    _exit_on(stop)
    try:
        runner.start()
    except OSError as exc:
        runner.close()
        raise cannot_listen(settings.host, settings.port, exc) from exc
    logging.getLogger("gateway").warning(
        "gateway %s listening on %s:%d, results to %s",
        settings.ae_title,
        settings.host,
        settings.port,
        runner.pipeline.delivery.name,
    )
    try:
        runner.run(stop)
    finally:
        runner.close()


@app.command("gateway-outbox")
def gateway_outbox(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The gateway's data folder.")] = Path(".lrc-gateway"),
    show_all: Annotated[bool, typer.Option("--all", help="Also the steps that are done.")] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Make failed steps pending again (the gateway runs them).")
    ] = False,
) -> None:
    """The gateway's outbox: steps pending or failed (one JSON line each); re-arm failed ones."""
    import dataclasses
    import json

    from gateway.errors import InvalidConfig
    from gateway.outbox import DONE, Outbox

    path = data_dir / "outbox.sqlite"
    if not path.is_file():
        typer.echo(f"error: no outbox at {path}", err=True)
        raise typer.Exit(2)
    try:
        outbox = Outbox(path)
    except InvalidConfig as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        if retry_failed:
            typer.echo(f"{outbox.rearm()} failed step(s) pending again", err=True)
        for step in outbox.steps():
            if show_all or step.state != DONE:
                typer.echo(json.dumps(dataclasses.asdict(step)))
    finally:
        outbox.close()
