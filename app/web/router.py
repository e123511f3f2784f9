"""The web page: ``/`` sends browsers to ``/ui/``; ``/ui/...`` serves the files under ``static/``;
``/ui/api/series/{id}/image`` gives the slice viewer a series' image as NIfTI.

The page itself needs no key (it holds no data); everything it shows comes from the API with the
key the user signs in with.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from app.api.deps import ContextDep, Viewer
from app.web.images import series_nifti
from core.errors import NotFound

STATIC = (Path(__file__).parent / "static").resolve()
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    """Browsers asking for the root get the page."""
    return RedirectResponse("/ui/")


@router.get(
    "/ui/api/series/{series_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "NIfTI-1 (.nii)"}},
)
async def series_image(series_id: str, ctx: ContextDep, caller: Viewer) -> FileResponse:
    """The series' image as uncompressed NIfTI-1, on the grid of its segmentation results."""
    ctx.settings.work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ui-image-", dir=ctx.settings.work_dir))
    try:  # the folder outlives this function: the response streams from it, then removes it
        path = await run_in_threadpool(series_nifti, ctx, series_id, caller.project, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"series-{series_id}.nii",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.get("/ui/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """A file of the page (``index.html`` for the folder itself); nothing outside ``static/``."""
    target = (STATIC / (path or "index.html")).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        raise NotFound("page", path)
    return FileResponse(target, media_type=MEDIA_TYPES.get(target.suffix), headers={"Cache-Control": "no-cache"})
