"""worker/broker_watch.py: a Redis that restarted is recognised by its run id (a real redis-server)."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.servers import RedisServer
from worker.broker_watch import BrokerWatch, Reconnections


def test_a_restarted_redis_is_a_new_broker(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", persistent=False)
    server.start()
    try:
        watch = BrokerWatch(server.url)
        assert watch.identifies
        assert not watch.restarted()  # the first look only records the run id
        first = watch.run_id
        assert first
        assert not watch.restarted()  # the same server
        server.stop(hard=True)
        server.start()
        assert watch.restarted()
        assert watch.run_id != first
        assert not watch.restarted()
    finally:
        server.stop()


def test_other_brokers_have_no_run_id(tmp_path: Path):
    watch = BrokerWatch(f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    assert not watch.identifies
    assert watch.current() is None
    assert not watch.restarted()


def test_only_reconnections_wake_the_sweeper():
    reconnections = Reconnections()
    reconnections.started()  # the first connection of the consumer
    assert not reconnections.wait(0.01)
    reconnections.started()
    assert reconnections.wait(0.01)
    assert not reconnections.wait(0.01)  # reported once


def test_a_new_broker_stays_due_until_its_jobs_were_sent_again(tmp_path: Path):
    # Redis back before the database (a host restart): the first re-send fails; the next check must try again.
    server = RedisServer(tmp_path / "redis", persistent=False)
    server.start()
    try:
        watch = BrokerWatch(server.url)
        assert not watch.resend_due(reconnected=False)
        server.stop(hard=True)
        server.start()
        assert watch.resend_due(reconnected=True)
        assert watch.resend_due(reconnected=False)  # the sweep failed: still due
        watch.resent()
        assert not watch.resend_due(reconnected=False)
    finally:
        server.stop()


def test_without_run_ids_a_reconnection_makes_a_resend_due(tmp_path: Path):
    watch = BrokerWatch(f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}")
    assert not watch.resend_due(reconnected=False)
    assert watch.resend_due(reconnected=True)
    assert watch.resend_due(reconnected=False)
    watch.resent()
    assert not watch.resend_due(reconnected=False)
