"""``/docs`` in a real Chromium cut off from every other host: Swagger UI renders the API from the
service's own files under the page's Content-Security-Policy."""

from __future__ import annotations

from playwright.sync_api import Browser, Request, Route, expect

from tests.service.harness import Service


def test_docs_work_without_the_internet_under_their_policy(browser: Browser, service: Service) -> None:
    context = browser.new_context()
    foreign: list[str] = []
    problems: list[str] = []

    def elsewhere(route: Route, request: Request) -> None:  # as on a hospital network without internet
        foreign.append(request.url)
        route.abort()

    context.route(lambda url: not url.startswith(service.url), elsewhere)
    tab = context.new_page()
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.goto(f"{service.url}/docs")
    expect(tab.locator(".opblock-tag-section").first).to_be_visible(timeout=30_000)
    expect(tab.locator(".info .title")).to_contain_text("LRC segmentation service")
    assert tab.locator(".opblock").count() >= 30  # every route of the API is listed
    jobs = tab.locator(".opblock-get", has_text="/v1/jobs/{job_id}/events")
    jobs.locator(".opblock-summary").click()  # an operation opens with its parameters
    expect(jobs.locator(".parameters-container")).to_contain_text("job_id")
    context.close()
    assert not foreign, f"the docs asked other hosts: {foreign}"
    assert not problems, f"errors in the docs page (a Content-Security-Policy refusal among them?): {problems}"
