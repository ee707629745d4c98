"""/docs and /redoc in headless Chromium that can reach no host but 127.0.0.1, as on a host
without internet access: both render the API's operations from this server's files alone."""

import pytest

from tests.browser import chromium, requires_chromium, screenshot, wait_for_text
from tests.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic, requires_chromium]

# Every host name fails to resolve except 127.0.0.1: a CDN request cannot succeed.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)
# ReDoc's "API docs by Redocly" footer always asks for this logo; the page's
# Content-Security-Policy blocks it before any request is made.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def requested_urls(browser):
    """Every URL the page asked for (scripts, styles, images, fetches), loaded or not."""
    return browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


def test_swagger_ui_renders_operations_offline():
    with LiveServer(api_only=True) as server, chromium(extra_flags=OFFLINE) as browser:
        browser.get(server.url + "/docs")
        text = wait_for_text(browser, "/v1/cues/{cue_id}", timeout=20, css="#swagger-ui")
        assert "/v1/auth/register" in text and "POST" in text, text[:500]
        screenshot(browser, "docs-offline")
        urls = requested_urls(browser)
        assert server.url + "/openapi.json" in urls
        assert [u for u in urls if not u.startswith((server.url + "/", "data:"))] == []


def test_redoc_renders_operations_offline():
    with LiveServer(api_only=True) as server, chromium(extra_flags=OFFLINE) as browser:
        browser.get(server.url + "/redoc")
        text = wait_for_text(browser, "/v1/cues/{cue_id}", timeout=20, css="redoc")
        assert "/v1/auth/register" in text, text[:500]
        screenshot(browser, "redoc-offline")
        urls = requested_urls(browser)
        assert server.url + "/openapi.json" in urls
        assert [u for u in urls if not u.startswith((server.url + "/", "data:")) and u != REDOCLY_LOGO] == []
