"""A script smuggled into /auth/device's link does not run in the browser of an operator who is
logged in to the admin, and the admin works under the Content-Security-Policy."""

from urllib.parse import quote

import pytest
import requests

from tests.browser import chromium, requires_chromium, wait_for_text
from tests.live import LiveServer, wait_for

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic, requires_chromium]
PASSWORD = "correct horse battery staple"
# What the attacker's link carried: read an admin page, keep it where the test can see it.
INJECTION = ('</script><script>fetch("/admin/accounts/user/").then(r => r.text())'
             '.then(t => { window.stolen = t; })</script><script>window.injected = true</script>')


def csp_violations(browser):
    return [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]


def test_an_injected_script_does_not_run_and_the_admin_still_works():
    from selenium.webdriver.common.by import By

    with LiveServer(api_only=True) as server, chromium(1000, 800) as browser:
        server.manage("createsuperuser", "--noinput", "--email", "ops@example.com", DJANGO_SUPERUSER_PASSWORD=PASSWORD)
        requests.post(server.url + "/v1/auth/register", json={"email": "user@example.com"}, timeout=10)
        browser.get(server.url + "/admin/")
        browser.find_element(By.NAME, "username").send_keys("ops@example.com")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait_for_text(browser, "Log out")

        browser.get(server.url + "/auth/device?code=" + quote(INJECTION))
        assert browser.execute_script("return window.injected") is None
        assert not wait_for(lambda: browser.execute_script("return window.stolen"), 1), "an admin page was read"
        assert "This login link is not valid" in browser.find_element(By.TAG_NAME, "main").text

        # Even on a valid page, an inline script (however it got there) is refused by the policy.
        browser.get(server.url + "/auth/device?code=ABCD-EFGH")
        browser.execute_script("const s = document.createElement('script');"
                               "s.textContent = 'window.injected = true'; document.body.append(s);")
        assert browser.execute_script("return window.injected") is None
        assert csp_violations(browser), "the browser reported no blocked inline script"

        # The admin's own scripts are files, so the policy leaves it working: the user list's
        # "select all" checkbox (JavaScript) counts the selection.
        browser.get(server.url + "/admin/accounts/user/")
        browser.find_element(By.ID, "action-toggle").click()
        assert wait_for_text(browser, "2 of 2 selected", css=".action-counter")
        browser.get(server.url + "/admin/cues/cue/")
        wait_for_text(browser, "Select cue to change")
        assert csp_violations(browser) == []
