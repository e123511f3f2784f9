"""Prometheus metrics of the API: requests by route and status, latency, and jobs by state."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.records.db import Database
from core.records.tables import Job


class JobCollector(Collector):
    """``lrc_jobs{kind,state}``, counted in the database at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge family of job counts."""
        family = GaugeMetricFamily("lrc_jobs", "Jobs by kind and state", labels=["kind", "state"])
        with self.db.session() as session:
            rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state))
            for kind, state, count in rows:
                family.add_metric([kind, state], float(count))
        yield family


class Metrics:
    """A registry per application (tests build several apps in one process)."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lrc_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "lrc_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.registry.register(JobCollector(db))


class MetricsMiddleware:
    """Count and time each request by its route template (not the raw path: ids would explode labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
