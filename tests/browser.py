"""Headless Debian Chromium driven by Selenium through the system chromedriver (`make browser`
installs both; Selenium Manager never downloads a browser here). Screenshots go to
artifacts/screenshots/ (gitignored; CI keeps them as artifacts)."""

import os
import shutil
from contextlib import contextmanager

import pytest

from tests.live import BASE_DIR

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = BASE_DIR / "artifacts" / "screenshots"

# .ci/run sets REQUIRE_CHROMIUM=1 so a missing browser fails CI instead of skipping quietly.
requires_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("REQUIRE_CHROMIUM"),
    reason="Chromium and chromedriver are not installed (Debian packages chromium, chromium-driver: `make browser`)",
)


@contextmanager
def chromium(width=1280, height=900, extra_flags=()):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--window-size={width},{height}", *extra_flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text, timeout=10, css="body"):
    """Wait until `text` is visible inside the first element matching `css`; return that text.
    Case-insensitive: the visible text is after CSS text-transform (the admin capitalises
    its messages and upper-cases its headings)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # A page still loading (a form submit's redirect) can swap the element between the find
    # and the read: that is "not yet", not a failure.
    WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: text.lower() in d.find_element(By.CSS_SELECTOR, css).text.lower(),
        message=f"{text!r} never appeared in {css}")
    return driver.find_element(By.CSS_SELECTOR, css).text


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
