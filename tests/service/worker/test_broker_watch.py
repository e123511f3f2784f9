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
