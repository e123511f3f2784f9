"""The records' schema changes as Alembic revisions (``versions/``, oldest ``0001``), run by
:func:`core.records.upgrade.upgrade` at every start.

The Alembic configuration is made here in code, not read from an ``alembic.ini``: it works from an
installed package and any working directory. ``env.py`` runs the revisions on the connection (and in
the transaction) that the caller passes in ``Config.attributes["connection"]``. ``python -m
core.records.migrations revision -m "what changes"`` writes a new revision (see ``__main__.py``).
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

FOLDER = Path(__file__).parent


def alembic_config(connection: Connection | None = None) -> Config:
    """The project's Alembic configuration; ``connection``: where ``env.py`` runs the revisions."""
    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["applied"] = []
    return config


def revisions() -> list[str]:
    """The revision ids, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def head() -> str:
    """The newest revision id: the schema of :mod:`core.records.tables`."""
    return revisions()[-1]
