"""The work behind each task, callable without Celery: ``runner(ctx, job, report) -> result``."""
