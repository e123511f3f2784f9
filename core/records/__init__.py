"""The persistent records (SQLAlchemy 2.x) and the functions that read and change them.

API and workers both use this package; nothing else touches the tables. It imports neither
FastAPI nor torch.
"""

from core.records.db import Database
from core.records.tables import (
    ApiKey,
    Base,
    Blob,
    Dataset,
    DatasetCase,
    Job,
    ModelVersion,
    Promotion,
    ResultInstance,
    Segmentation,
    Series,
    Study,
    WorkerBeat,
)

__all__ = [
    "ApiKey",
    "Base",
    "Blob",
    "Database",
    "Dataset",
    "DatasetCase",
    "Job",
    "ModelVersion",
    "Promotion",
    "ResultInstance",
    "Segmentation",
    "Series",
    "Study",
    "WorkerBeat",
]
