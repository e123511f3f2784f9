"""What a process of the service works with: settings, records, blob store and job queue."""

from __future__ import annotations

from dataclasses import dataclass

from core.queue import JobQueue
from core.records.db import Database
from core.settings import Settings
from core.storage import BlobStore


@dataclass
class Context:
    """Built once per process (API or worker) by :func:`build_context`."""

    settings: Settings
    db: Database
    store: BlobStore
    queue: JobQueue


def build_context(settings: Settings) -> Context:
    """Create data folders and tables, and connect to the broker lazily."""
    settings.prepare()
    db = Database(settings.database_url)
    db.create_schema()
    return Context(settings, db, BlobStore(settings.blob_dir), JobQueue(settings))
