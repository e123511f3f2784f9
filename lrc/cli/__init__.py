"""The library's commands: ``info``, ``convert`` and the model commands (pre-train, fine-tune, segment,
evaluate, ...). The ``lrc`` command adds the service's to them (:mod:`cli`, above the library).

Commands that need no model (``info``, ``convert``) import neither torch nor MONAI; the training
and inference commands import them when they start.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from lrc import log_privacy
from lrc.cli import io_commands, model_commands

HELP = "Label-efficient medical image segmentation (Localized Region Contrast)."

app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
app.registered_commands += io_commands.app.registered_commands + model_commands.app.registered_commands


@app.callback()
def configure_logging(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    """``--verbose``: log progress; every command's log keeps to :mod:`lrc.log_privacy`."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    log_privacy.install()  # every command's log (uvicorn's access log under `lrc serve`, the gateway's) keeps to it


__all__ = ["HELP", "app", "configure_logging"]
