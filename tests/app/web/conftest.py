"""Fixtures of the web page tests: the embedded service with the shipped starter model, and a real
Chromium (Debian's ``chromium`` package) driven by Playwright, signed in with the admin key."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from core.settings import Settings
from tests.service.harness import ADMIN_KEY, FAST, Service, running_service

CHROMIUM = Path(os.environ.get("LRC_CHROMIUM", "/usr/bin/chromium"))


def pytest_configure(config: pytest.Config) -> None:
    """kombu 5.7's SQLAlchemy transport (the embedded broker) declares ``lazy="noload"`` relations
    (kombu/transport/sqlalchemy/models.py), which SQLAlchemy 2.1 deprecates; not ours to fix."""
    config.addinivalue_line(
        "filterwarnings", "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    )


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """API + one worker for every queue, SQLite records; the starter model (lrc's package data) as production."""
    root = tmp_path_factory.mktemp("web-service")
    options = {**FAST, "starter_model_dir": None}
    settings = Settings(data_dir=root / "data", bootstrap_admin_key=ADMIN_KEY, max_upload_bytes=64 * 1024**2, **options)
    with running_service(settings, (("all", "infer,io,train"),), root) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the Debian package (no browser download)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/test.sh does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    """A fresh browser tab on the page, signed in as admin; fails the test on any error in the page, a
    Content-Security-Policy refusal included."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None
    )
    tab.goto(f"{service.url}/")
    tab.fill("#api-key", ADMIN_KEY)
    tab.click("#signin-form button")
    tab.wait_for_selector("#tabs:not([hidden])")
    yield tab
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``LRC_WEB_SCREENSHOTS`` (e.g. docs/screenshots) or a temporary folder."""
    configured = os.environ.get("LRC_WEB_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def dicom_ct(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The real 20-slice DICOM CT (Siemens, JPEG 2000), copied so that the browser may read it."""
    folder = tmp_path_factory.mktemp("dicom-ct")
    return [Path(shutil.copy(p, folder)) for p in sorted((shared_data / "dicom" / "ct_series_totalseg").glob("CT.*"))]
