"""Celery workers: thin tasks that call ``lrc`` runners."""
