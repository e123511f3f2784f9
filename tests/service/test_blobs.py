"""app/services/blobs.py: a failed request's blobs are removed, never one that another request records; on
SQLite and PostgreSQL, with the other request in another thread (its own connection)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from app.context import Context, build_context
from app.records.models import Blob
from app.services import blobs
from app.settings import Settings
from tests.service.harness import FAST
from tests.service.postgres import postgres_database


class RequestFailed(Exception):
    """The failure of the request under test, after it stored its blobs."""


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    with postgres_database() if request.param == "postgresql" else contextlib.nullcontext(None) as url:
        settings = Settings(data_dir=tmp_path / "data", **FAST, **({"database_url": url} if url else {}))
        context = build_context(settings)
        assert context.db.engine.dialect.name == request.param
        try:
            yield context
        finally:
            context.db.engine.dispose()


@pytest.fixture
def shared_file(ct_nifti: tuple[Path, Path]) -> Path:
    """The content both requests store: a real label map."""
    return ct_nifti[1]


@pytest.fixture
def own_file(ct_nifti: tuple[Path, Path]) -> Path:
    """Content only the failing request stores."""
    return ct_nifti[0]


def _rows(ctx: Context) -> set[str]:
    with ctx.db.session() as session:
        return set(session.scalars(select(Blob.sha256)))


def _other_request_records(ctx: Context, source: Path) -> str:
    """Another request (another thread) stores the same content and records it."""

    def run() -> str:
        with ctx.store.undo_on_error(partial(blobs.discard, ctx)):
            sha, _ = ctx.store.put_file(source)
            with ctx.db.session() as session:
                blobs.record(session, ctx.store, {sha: source})
        return sha

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=60)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _failing_request(ctx: Context, paths: list[Path], meanwhile: Callable[[], object] = lambda: None) -> None:
    """A request that stores ``paths`` (creating their files), lets ``meanwhile`` happen, then fails."""
    with ctx.store.undo_on_error(partial(blobs.discard, ctx)):
        for path in paths:
            ctx.store.put_file(path)
        meanwhile()
        raise RequestFailed


def test_a_failed_request_removes_the_blobs_it_created(ctx: Context, own_file: Path, shared_file: Path):
    with pytest.raises(RequestFailed):
        _failing_request(ctx, [own_file, shared_file])
    assert not ctx.store.exists(_sha(own_file))
    assert not ctx.store.exists(_sha(shared_file))
    assert _rows(ctx) == set()


def test_a_blob_recorded_by_another_request_meanwhile_is_kept(ctx: Context, own_file: Path, shared_file: Path):
    """This request creates both files, another one finds the shared one there and records it, this one fails."""
    with pytest.raises(RequestFailed):
        _failing_request(ctx, [own_file, shared_file], lambda: _other_request_records(ctx, shared_file))
    assert not ctx.store.exists(_sha(own_file))
    assert ctx.store.exists(_sha(shared_file))
    assert _rows(ctx) == {_sha(shared_file)}


def test_a_blob_removed_before_it_is_recorded_is_stored_again(ctx: Context, shared_file: Path):
    """The other request found the file, then this one failed and removed it, then the other recorded it."""
    sha, _ = ctx.store.put_file(shared_file)
    blobs.discard(ctx, [sha])
    assert not ctx.store.exists(sha)
    with ctx.db.session() as session:
        blobs.record(session, ctx.store, {sha: shared_file})
    assert ctx.store.exists(sha)
    assert _rows(ctx) == {sha}


def test_a_discard_waits_for_a_record_in_progress_and_keeps_the_file(ctx: Context, shared_file: Path):
    """The other request has added the row, not yet committed, when this one discards: the discard waits for
    the commit and then keeps the file (without the wait it would remove a file the commit then uses)."""
    sha, _ = ctx.store.put_file(shared_file)
    recorded = threading.Event()
    commit = threading.Event()

    def other_request() -> None:
        with ctx.db.session() as session:
            blobs.record(session, ctx.store, {sha: shared_file})
            recorded.set()
            commit.wait(30)
            time.sleep(0.5)  # the discard is waiting on the row by now

    with ThreadPoolExecutor(2) as pool:
        other = pool.submit(other_request)
        assert recorded.wait(30)
        discarding = pool.submit(blobs.discard, ctx, [sha])
        commit.set()
        other.result(timeout=60)
        discarding.result(timeout=60)
    assert ctx.store.exists(sha)
    assert _rows(ctx) == {sha}
