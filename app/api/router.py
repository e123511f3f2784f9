"""All routers of the API."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import datasets, dicomweb, health, jobs, keys, model_versions, segmentations, studies, training
from app.web import router as web

api_router = APIRouter()
for module in (health, studies, segmentations, jobs, datasets, training, model_versions, keys):
    api_router.include_router(module.router)
api_router.include_router(dicomweb.router)  # DICOMweb STOW-RS
api_router.include_router(web.router)  # the web page
