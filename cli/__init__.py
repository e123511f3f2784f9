"""The ``lrc`` command, assembled above everything it runs: the library's own commands (:mod:`lrc.cli`)
and the service's (``serve``, ``worker``, ``keys``: :mod:`cli.service_commands`; ``gateway``:
:mod:`cli.gateway_commands`; ``pacs``: :mod:`cli.pacs_commands`). Nothing beneath imports this package:
``lrc``, ``core``, ``app``, ``worker`` and ``gateway`` stay usable without it.

The service's modules (FastAPI, Celery, SQLAlchemy, pynetdicom) are imported inside its commands, so that
``lrc info`` and friends stay fast.
"""

from __future__ import annotations

import typer

from cli import gateway_commands, pacs_commands, service_commands
from lrc import cli as library

app = typer.Typer(no_args_is_help=True, add_completion=False, help=library.HELP)
app.callback()(library.configure_logging)
app.registered_commands += library.app.registered_commands
app.registered_commands += service_commands.app.registered_commands
app.registered_commands += gateway_commands.app.registered_commands
app.add_typer(service_commands.keys_app, name="keys")
app.add_typer(pacs_commands.pacs_app, name="pacs")


def main() -> None:
    """Entry point of the ``lrc`` console script."""
    app()


__all__ = ["app", "main"]
