"""The ``lrc`` command line.

Commands that need no model (``info``, ``convert``) import neither torch nor MONAI; the training
and inference commands import them when they start.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from lrc import log_privacy
from lrc.cli import gateway_commands, io_commands, model_commands, pacs_commands, service_commands

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Label-efficient medical image segmentation (Localized Region Contrast).",
)
app.registered_commands += io_commands.app.registered_commands + model_commands.app.registered_commands
app.registered_commands += service_commands.app.registered_commands
app.registered_commands += gateway_commands.app.registered_commands
app.add_typer(service_commands.keys_app, name="keys")
app.add_typer(pacs_commands.pacs_app, name="pacs")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    log_privacy.install()  # every command's log (uvicorn's access log under `lrc serve`, the gateway's) keeps to it


def main() -> None:
    """Entry point of the ``lrc`` console script."""
    app()


__all__ = ["app", "main"]
