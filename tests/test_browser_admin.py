"""The operators' dashboard in a real browser against a live server whose real engine has
delivered (and failed to deliver) webhooks: log in, read the overview, filter the failures,
open one's timeline, replay it. Screenshots land in artifacts/screenshots/."""

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.browser import chromium, requires_chromium, screenshot, wait_for_text
from tests.live import LiveServer, wait_for
from tests.receiver import Receiver

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic, requires_chromium]
PASSWORD = "correct horse battery staple"


def test_an_operator_finds_a_failure_reads_its_story_and_replays_it():
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with (LiveServer(CUEAPI_RATE_LIMIT_ENABLED="false") as server,
          Receiver([(500, b"database is down")]) as broken, Receiver([(200, {"success": True})]) as healthy):
        auth = {"Authorization": "Bearer " + requests.post(server.url + "/v1/auth/register",
                                                           json={"email": "team@example.com"}, timeout=10).json()["api_key"]}

        def cue(name, url):
            body = {"name": name, "schedule": {"type": "recurring", "cron": "0 3 * * *"},
                    "callback": {"url": url}, "retry": {"max_attempts": 1}}
            return requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]

        report, sync = cue("nightly-report", broken.url), cue("hourly-sync", healthy.url)
        # Three failures in a row raise a consecutive_failures alert; two one-time cues due in
        # a moment are fired by the poller (the overview's fire lag); a worker says hello.
        at = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
        for name in ("invoice-run", "digest"):
            requests.post(server.url + "/v1/cues", headers=auth, timeout=10, json={
                "name": name, "schedule": {"type": "once", "at": at}, "callback": {"url": healthy.url}})
        requests.post(server.url + "/v1/worker/heartbeat", json={"worker_id": "box-1"}, headers=auth, timeout=10)
        fired = [requests.post(f"{server.url}/v1/cues/{c}/fire", headers=auth, timeout=10).json()["id"]
                 for c in (report, sync, report, sync, report, sync)]

        def settled():
            executions = requests.get(f"{server.url}/v1/executions?limit=100", headers=auth, timeout=10).json()
            return executions["total"] == 8 and all(e["status"] in ("success", "failed")
                                                    for e in executions["executions"])

        assert wait_for(settled, 30), server.output()
        failed_ids = set(fired[0::2])
        alerts = requests.get(server.url + "/v1/alerts", headers=auth, timeout=10).json()["alerts"]
        assert [a["alert_type"] for a in alerts] == ["consecutive_failures"]
        alerted_id = alerts[0]["execution_id"]
        server.manage("createsuperuser", "--noinput", "--email", "ops@example.com", DJANGO_SUPERUSER_PASSWORD=PASSWORD)

        with chromium(1200, 860) as browser:
            browser.get(server.url + "/admin/")
            browser.find_element(By.NAME, "username").send_keys("ops@example.com")
            browser.find_element(By.NAME, "password").send_keys(PASSWORD)
            browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
            overview = wait_for_text(browser, "Failure rate", css="#overview")
            assert "Failure rate: 38 %" in overview, overview  # 3 of 8
            assert re.search(r"^consecutive_failures 1$", overview, re.M), overview
            assert re.search(r"Fire lag \(due → fired\), last 2: p50 [0-9.]+ s", overview), overview
            assert re.search(r"^poller ok [0-9.]+ s ago$", overview, re.M), overview
            assert re.search(r"^dispatcher ok [0-9.]+ s ago$", overview, re.M), overview
            assert "nightly-report" in browser.find_element(By.ID, "recent-failures").text
            screenshot(browser, "admin-overview")

            # "failed" in the last-24-h table: the changelist, filtered.
            browser.find_element(By.CSS_SELECTOR, "#overview a[href*='verdict=failed']").click()
            listing = wait_for_text(browser, "Select execution to change", css="#content")
            rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
            assert len(rows) == 3 and all("server error (500)" in row.text for row in rows), listing
            # The list shows each id's first 8 characters, the whole id on hover.
            ids = {row.find_element(By.CSS_SELECTOR, "th a span").get_attribute("title") for row in rows}
            assert ids == failed_ids
            assert {row.find_element(By.CSS_SELECTOR, "th a").text for row in rows} == {i[:8] for i in failed_ids}

            # The failure that completed the streak: its timeline ends with the alert.
            browser.find_element(By.CSS_SELECTOR, f"#result_list th a span[title='{alerted_id}']").click()
            story = wait_for_text(browser, "attempt 1: failed", css="table.timeline")
            assert "HTTP 500" in story and "Webhook endpoint returned server error (500)" in story, story
            assert "alert: consecutive_failures" in story, story
            failed_id = alerted_id
            screenshot(browser, "admin-execution-timeline")

            browser.back()
            wait_for_text(browser, "Select execution to change", css="#content")
            browser.find_element(By.CSS_SELECTOR, f"#result_list input.action-select[value='{failed_id}']").click()
            Select(browser.find_element(By.NAME, "action")).select_by_value("replay")
            browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
            wait_for_text(browser, f"{failed_id}: replayed", css=".messagelist")

        executions = requests.get(f"{server.url}/v1/executions?cue_id={report}", headers=auth, timeout=10).json()
        assert executions["total"] == 4  # three failures and the replay, which the engine delivers again
        assert wait_for(lambda: len(broken.requests) == 4, 30)
