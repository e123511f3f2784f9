"""core/blobs.py: a failed request's blobs are removed, never one that another request records; on
SQLite and PostgreSQL, with the other request in another thread (its own connection)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import delete, event, select

from core import blobs
from core.context import Context, build_context
from core.records import studies as records
from core.records.tables import Blob
from core.settings import Settings
from tests.service.harness import FAST
from tests.service.postgres import database_url


class RequestFailed(Exception):
    """The failure of the request under test, after it stored its blobs."""


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    with database_url(request.param) as url:
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


@contextlib.contextmanager
def _statements(ctx: Context) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile (all threads)."""
    sent: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", listen)
    try:
        yield sent
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", listen)


def _unknown_shas(count: int) -> list[str]:
    """Hashes of content nobody stored."""
    return [hashlib.sha256(f"never stored {n}".encode()).hexdigest() for n in range(count)]


def test_a_discard_asks_only_the_blob_rows(ctx: Context, own_file: Path):
    """A failed request with many blobs (a dataset of 20 cases x 300 slices) must not search every record
    for each of them (it took minutes): the blob rows alone tell which are in use, asked in a few chunks."""
    sha, _ = ctx.store.put_file(own_file)
    shas = [sha, *_unknown_shas(1200)]
    with _statements(ctx) as sent:
        blobs.discard(ctx, shas)
    assert not ctx.store.exists(sha)
    assert _rows(ctx) == set()
    for table in ("series", "segmentations", "dataset_cases", "LIKE"):
        assert not [s for s in sent if table in s], f"discard read {table}"
    assert 1 <= len([s for s in sent if s.lstrip().upper().startswith("SELECT")]) <= 3, sent[:5]


def test_a_discard_of_more_blobs_than_a_statement_takes_parameters(ctx: Context, own_file: Path, shared_file: Path):
    """A statement takes at most 65,535 parameters on PostgreSQL (psycopg), 32,766 on SQLite (999 before 3.32,
    which this test holds it to; Debian builds it with 250,000): a longer list of blobs is asked in chunks, so
    the files are still removed (not all kept because the question failed)."""
    count = 66_000
    if ctx.db.engine.dialect.name == "sqlite":
        count = 2_000
        ctx.db.engine.dispose()
        event.listen(ctx.db.engine, "connect", _old_sqlite_limit)
    own = ctx.store.put_file(own_file)[0]
    kept = _other_request_records(ctx, shared_file)
    unknown = _unknown_shas(count)
    blobs.discard(ctx, [*unknown[: count // 2], own, kept, *unknown[count // 2 :]])
    assert not ctx.store.exists(own)
    assert ctx.store.exists(kept)
    assert _rows(ctx) == {kept}


def _old_sqlite_limit(connection: sqlite3.Connection, _: object) -> None:
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)


@contextlib.contextmanager
def _meeting(ctx: Context, when: str, first: str, timeout: float) -> Iterator[threading.Barrier]:
    """Two threads meet at their first statement that starts with ``first`` (``before`` or ``after`` it is sent);
    one that waits ``timeout`` seconds for the other goes on alone."""
    barrier = threading.Barrier(2, timeout=timeout)
    met = threading.local()

    def listen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(first) and "blobs" in statement and not getattr(met, "done", False):
            met.done = True
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

    event.listen(ctx.db.engine, f"{when}_cursor_execute", listen)
    try:
        yield barrier
    finally:
        event.remove(ctx.db.engine, f"{when}_cursor_execute", listen)


def _record_in_thread(ctx: Context, sources: dict[str, Path]) -> None:
    with ctx.db.session() as session:
        blobs.record(session, ctx.store, sources)


def test_two_requests_record_the_same_new_content_at_once(ctx: Context, shared_file: Path):
    """Both find no row and add one: the second must not fail on the unique key (a 500 for its request)."""
    for _ in range(3):  # each round starts from no row
        sha, _ = ctx.store.put_file(shared_file)
        with _meeting(ctx, "before", "", timeout=10), ThreadPoolExecutor(2) as pool:
            done = [pool.submit(_record_in_thread, ctx, {sha: shared_file}) for _ in range(2)]
            for future in done:
                future.result(timeout=60)
        assert _rows(ctx) == {sha}
        assert ctx.store.exists(sha)
        with ctx.db.session() as session:
            session.execute(delete(Blob))


def test_records_of_shared_blobs_in_opposite_orders_do_not_deadlock(ctx: Context, own_file: Path, shared_file: Path):
    """Two datasets sharing two label maps, sent in opposite orders: each request holds the first row it adds
    while it adds the second. Rows added in one order (by hash) make the second wait instead of deadlocking."""
    first, second = ctx.store.put_file(own_file)[0], ctx.store.put_file(shared_file)[0]
    orders = [{first: own_file, second: shared_file}, {second: shared_file, first: own_file}]
    with _meeting(ctx, "after", "INSERT", timeout=2), ThreadPoolExecutor(2) as pool:
        done = [pool.submit(_record_in_thread, ctx, sources) for sources in orders]
        for future in done:
            future.result(timeout=60)
    assert _rows(ctx) == {first, second}


def test_many_rows_added_in_opposite_orders_do_not_deadlock(ctx: Context):
    """The same, with many rows each sent in one statement: the rows go in hash order whatever the caller's."""
    sizes = dict.fromkeys(_unknown_shas(2000), 1)

    def add(shas: list[str]) -> None:
        with ctx.db.session() as session:
            records.add_blobs(session, {sha: sizes[sha] for sha in shas})

    with _meeting(ctx, "before", "INSERT", timeout=10), ThreadPoolExecutor(2) as pool:
        done = [pool.submit(add, order) for order in (list(sizes), list(reversed(sizes)))]
        for future in done:
            future.result(timeout=60)
    assert _rows(ctx) == set(sizes)
