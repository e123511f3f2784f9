"""What the API (``app``) and the workers (``worker``) share: the core beneath both.

Both processes work on the same state: one settings object (:mod:`core.settings`), the records
(:mod:`core.records`, with their schema revisions), the content-addressed blob store
(:mod:`core.storage`, :mod:`core.blobs`), the Celery application and the job queue that sends tasks by
name (:mod:`core.celery_app`, :mod:`core.queue`), dispatch and the recovery sweep (:mod:`core.dispatch`),
the typed domain errors (:mod:`core.errors`) and what a produced DICOM instance is recorded with
(:mod:`core.instance_headers`). Keeping them here, beneath both, lets ``app`` and ``worker`` stay siblings
that never import each other. Like ``app``, it imports no torch: the API process stays light.
"""
