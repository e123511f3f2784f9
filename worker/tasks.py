"""The named Celery tasks: thin wrappers that pass ids to a runner (see :mod:`worker.runners`)."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from worker import runtime
from worker.execution import run_job


def register_tasks(app: Celery) -> None:
    """Define ``lrc.segment``, ``lrc.export``, ``lrc.finetune`` and ``lrc.pretrain`` on ``app``."""

    @app.task(name="lrc.segment", bind=True)
    def segment(self: Task, job_id: str, token: str) -> str:
        from worker.runners.segment import segment as runner

        cache = runtime.predictors()

        def run(ctx: Any, job: Any, report: Any) -> dict[str, Any]:
            return runner(ctx, job, report, cache)

        return run_job(runtime.context(), job_id, token, str(self.request.hostname), run)

    @app.task(name="lrc.export", bind=True)
    def export(self: Task, job_id: str, token: str) -> str:
        from worker.runners.export import export as runner

        return run_job(runtime.context(), job_id, token, str(self.request.hostname), runner)

    @app.task(name="lrc.finetune", bind=True)
    def finetune(self: Task, job_id: str, token: str) -> str:
        from worker.runners.train import finetune as runner

        return run_job(runtime.context(), job_id, token, str(self.request.hostname), runner)

    @app.task(name="lrc.pretrain", bind=True)
    def pretrain(self: Task, job_id: str, token: str) -> str:
        from worker.runners.train import pretrain as runner

        return run_job(runtime.context(), job_id, token, str(self.request.hostname), runner)
