"""Celery workers (the service issue): thin tasks that call ``lrc`` runners."""
