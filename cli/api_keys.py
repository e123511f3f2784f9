"""The service's API key for the commands that call it (``lrc gateway``, ``lrc pacs``): from
``LRC_GATEWAY_API_KEY`` or a file (``--api-key-file``), so that it stays out of ``ps``; ``--api-key``
still works, with a warning (every user of the machine can read a command line)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

ENV = "LRC_GATEWAY_API_KEY"
ApiKeyFlag = Annotated[
    str | None,
    typer.Option(
        "--api-key", help=f"API key (submitter role); visible to every user in `ps`: prefer {ENV} or --api-key-file."
    ),
]
ApiKeyFile = Annotated[
    Path | None,
    typer.Option("--api-key-file", help="A file holding the API key (submitter role), e.g. a mounted secret."),
]
FLAG_WARNING = f"warning: --api-key shows the key to every user of this machine (ps); use {ENV} or --api-key-file"


def resolve_api_key(flag: str | None, file: Path | None) -> str:
    """The key from ``--api-key-file``, ``--api-key`` (warned about, on stderr) or ``LRC_GATEWAY_API_KEY``;
    ``""`` when none is given. Exits with 2 when both options are given or the file is unusable."""
    if flag is not None and file is not None:
        typer.echo("error: give --api-key or --api-key-file, not both", err=True)
        raise typer.Exit(2)
    if file is not None:
        try:
            key = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"error: cannot read the API key file {file}: {exc}", err=True)
            raise typer.Exit(2) from exc
        if not key:
            typer.echo(f"error: the API key file {file} is empty", err=True)
            raise typer.Exit(2)
        return key
    if flag is not None:
        typer.echo(FLAG_WARNING, err=True)
        return flag
    return os.environ.get(ENV, "")
