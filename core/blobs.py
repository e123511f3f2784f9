"""The blobs of a request: recorded with what uses them, or discarded when the request fails, without
ever taking a file that another record uses.

Blob files are content-addressed: requests that store the same content share one file, and only the
first one creates it. A request that fails removes the files it created; but meanwhile another
request may have stored the same content (finding the file there) and be recording it. The blob's
row is where the two meet, so that exactly one of them wins:

- :func:`record` adds the rows in the transaction that records what uses the blobs, then checks that
  each file is still there, and stores it again from its source if it is not;
- :func:`discard` removes a file only while its transaction holds the blob's row: it inserts the
  row, removes the file, deletes the row, commits. A row that exists already (another request's)
  keeps the file. A :func:`record` of the same blob at that moment waits for the row (its unique
  key; on SQLite the database's write lock) until the discard commits, and then finds the file gone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import delete, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.context import Context
from core.records import studies as records
from core.records.tables import Blob
from core.storage import BlobStore

log = logging.getLogger(__name__)


def record(session: Session, store: BlobStore, sources: Mapping[str, Path]) -> None:
    """Add the rows of the blobs a request stored (``sha256 -> the file it was stored from``).

    Call it in the transaction that records what uses the blobs (requests, and workers for their
    outputs), while the sources exist: a file a failed request of the same content removed before
    the rows were added is stored again from its source.
    """
    records.add_blobs(session, {sha: source.stat().st_size for sha, source in sources.items()})
    # The rows are ours (or committed by others) from here: no discard can remove the files.
    for sha, source in sources.items():
        if not store.exists(sha):
            again, _ = store.put_file(source)
            log.info("blob %s removed by a failed request while being recorded: stored again", sha[:12])
            if again != sha:
                raise OSError(f"{source.name} changed while being stored (sha256 {again}, was {sha})")


def discard(ctx: Context, shas: list[str]) -> None:
    """Remove the blobs a failed request created, but those that another record uses.

    Called while the request's error propagates: never raises. When the records cannot be asked
    (database gone), every file is kept: an unreferenced file costs disk space, a record whose file
    was removed loses data (and a commit cut off by the outage may have been made after all).
    """
    if not shas:
        return
    try:
        remove_unrecorded(ctx, shas)
    except (SQLAlchemyError, OSError) as exc:  # a concurrent record() inserted a row first, or no database
        log.warning(
            "kept %d blob(s) of a failed request: cannot tell whether others use them (%s)",
            len(shas),
            type(exc).__name__,
        )


def remove_unrecorded(ctx: Context, shas: list[str]) -> list[str]:
    """Remove the files of those of ``shas`` that have no blob row; return them.

    The rows are held meanwhile (inserted, then deleted in the same transaction): a :func:`record` of
    the same content waits, then finds the file gone and stores it again from its source.

    Raises:
        SQLAlchemyError: a row was added meanwhile (the blob is in use: nothing is removed), or no database.
        OSError: a file could not be removed.
    """
    with ctx.db.session() as session:
        unused = records.unused_blobs(session, shas)
        if not unused:
            return []
        # Holds the rows (in hash order, as records.add_blobs adds them): a record() of the same
        # content waits until this commits. A row another request added meanwhile fails the insert.
        session.execute(insert(Blob), [{"sha256": sha, "size": 0} for sha in sorted(unused)])
        ctx.store.delete(unused)
        for start in range(0, len(unused), records.CHUNK):
            session.execute(delete(Blob).where(Blob.sha256.in_(unused[start : start + records.CHUNK])))
    return unused
