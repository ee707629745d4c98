"""Run the whole service in one terminal: API (gunicorn), poller and dispatcher.

`make run` uses this. Ctrl-C (or SIGTERM) stops all three together; if one dies, the others
are stopped too, so a half-running service is never left behind. In production run the three
commands under a supervisor instead (Procfile, docker-compose.yml).
"""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 30


class Command(BaseCommand):
    help = "Run gunicorn, run_poller and run_dispatcher together until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")

    def handle(self, *args, bind, **options):
        python = sys.executable
        commands = {
            "api": [python, "-m", "gunicorn", "cueapi.wsgi", "-c", "cueapi/gunicorn.conf.py",
                    "--bind", bind],
            "poller": [python, "manage.py", "run_poller"],
            "dispatcher": [python, "manage.py", "run_dispatcher"],
        }
        self.stopping = False
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        children = {name: subprocess.Popen(cmd) for name, cmd in commands.items()}
        self.stdout.write(f"CueAPI on http://{bind} (Ctrl-C stops everything)")
        exit_code = 0
        while not self.stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with {child.returncode}; stopping")
                    exit_code = child.returncode or 1
                    self.stopping = True
            time.sleep(0.2)
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(exit_code)

    def request_stop(self, signum, frame):
        self.stopping = True
