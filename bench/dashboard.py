"""What the operators' pages cost with a big history: `python -m bench.dashboard`.

A fresh PostgreSQL database is seeded with N executions (spread over 48 hours, every status,
one delivery attempt each, a failure in ten with an alert); then the admin overview, the
execution list (all, and filtered by `failed`), one execution's page and `GET /metrics` are
each requested 20 times over HTTP from a live server. Prints a Markdown row per page:
median and max milliseconds.
"""

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.live import LiveServer  # noqa: E402

SEED = """
from datetime import timedelta
from django.utils import timezone
from accounts.services import user_create
from alerts.models import Alert
from cues.models import Cue
from executions.models import DeliveryAttempt, Execution
user, _ = user_create(email="seed@example.com")
cue = Cue.objects.create(user=user, name="seed", schedule_type="recurring", schedule_cron="* * * * *",
                         callback_url="https://example.com/hook")
now = timezone.now()
statuses = ["success"] * 7 + ["failed", "outcome_timeout", "missed"]
for start in range(0, {n}, 10000):
    rows = []
    for i in range(start, min(start + 10000, {n})):
        due = now - timedelta(seconds=i * 172800 / {n})
        rows.append(Execution(cue=cue, scheduled_for=due, status=statuses[i % 10], attempts=1,
                              delivered_at=due, outcome_recorded_at=due if i % 3 else None,
                              error_message="boom" if i % 10 == 7 else None))
    Execution.objects.bulk_create(rows)
    DeliveryAttempt.objects.bulk_create(DeliveryAttempt(execution=e, attempt=1, transport="webhook",
                                                        result="delivered", started_at=e.scheduled_for,
                                                        finished_at=e.scheduled_for, duration_ms=12)
                                        for e in rows)
    Alert.objects.bulk_create(Alert(user=user, alert_type="consecutive_failures", cue_id=cue.id,
                                    execution_id=e.id, message="m") for e in rows if e.status == "failed")
Execution.objects.update(created_at=models.F("scheduled_for"))
print(Execution.objects.filter(status="failed").first().pk)
"""


def timed(session, url, repeat=20, **kwargs):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(url, timeout=60, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench")
    parser.add_argument("--executions", type=int, default=100_000)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.postgres
    with LiveServer(api_only=True, CUEAPI_METRICS_TOKEN="bench", LOG_LEVEL="WARNING") as server:
        started = time.monotonic()
        seed = "from django.db import models\n" + SEED.replace("{n}", str(args.executions))
        failed_id = server.manage("shell", "-c", seed).strip().splitlines()[-1]
        print(f"seeded {args.executions} executions in {time.monotonic() - started:.0f} s", file=sys.stderr)
        server.manage("shell", "-c", "from django.db import connection; connection.cursor().execute('ANALYZE')")
        server.manage("createsuperuser", "--noinput", "--email", "ops@example.com",
                      DJANGO_SUPERUSER_PASSWORD="correct horse battery")
        admin = requests.Session()
        page = admin.get(server.url + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        admin.post(server.url + "/admin/login/", headers={"Referer": server.url + "/admin/login/"}, timeout=10,
                   data={"csrfmiddlewaretoken": token, "username": "ops@example.com",
                         "password": "correct horse battery", "next": "/admin/"})
        pages = [
            ("admin overview", admin, "/admin/", {}),
            ("execution list", admin, "/admin/executions/execution/", {}),
            ("execution list, failed", admin, "/admin/executions/execution/?status__exact=failed", {}),
            ("execution timeline", admin, f"/admin/executions/execution/{failed_id}/change/", {}),
            ("GET /metrics", requests.Session(), "/metrics", {"headers": {"Authorization": "Bearer bench"}}),
        ]
        print(f"| page ({args.executions:,} executions, PostgreSQL) | median | max |")
        print("|---|---|---|")
        for name, session, path, kwargs in pages:
            median, worst = timed(session, server.url + path, **kwargs)
            print(f"| {name} | {median:.0f} ms | {worst:.0f} ms |")


if __name__ == "__main__":
    main()
