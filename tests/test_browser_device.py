"""The /auth/device page in a real browser: the person types an email, submits, is told to
check their email, and the emailed link approves the terminal's device code."""

import tempfile
from pathlib import Path

import pytest
import requests

from tests.browser import chromium, requires_chromium, screenshot, wait_for_text
from tests.live import LiveServer, wait_for_magic_link

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic, requires_chromium]


def test_the_device_page_sends_the_magic_link():
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(api_only=True, EMAIL_URL=f"filemail:///{mail_dir}") as server, chromium(800, 700) as browser:
            code = "BRWS-R123"
            created = requests.post(server.url + "/v1/auth/device-code", json={"device_code": code}, timeout=10)
            assert created.status_code == 201, created.text
            browser.get(created.json()["verification_url"])
            assert browser.find_element(By.ID, "code").text == code
            # The label is tied to the field, so a screen reader announces it.
            assert browser.find_element(By.CSS_SELECTOR, "label[for=email]").text == "Your email address"
            browser.find_element(By.ID, "email").send_keys("browser@example.com")
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            assert wait_for_text(browser, "Check your email for the login link.", css="#result")
            screenshot(browser, "device-page-submitted")

            # Submitting again is refused with the server's message, shown on the page.
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_for_text(browser, "expected 'pending'", css="#result")

            browser.get(wait_for_magic_link(mail_dir))
            wait_for_text(browser, "You're in.")
            poll = requests.post(server.url + "/v1/auth/device-code/poll", json={"device_code": code}, timeout=10).json()
            assert poll["status"] == "approved" and poll["email"] == "browser@example.com"
            assert poll["api_key"].startswith("cue_sk_")
