"""A real server for end-to-end tests: `manage.py serve` (what `make run` starts) as a child
process on a free port, with its own fresh database of the engine under test."""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent


def hosted_limits_env():
    """HOSTED_LIMITS as environment variables, for a live server whose tests are about them."""
    from cueapi.testing import HOSTED_LIMITS

    return {name: str(value) for name, value in HOSTED_LIMITS.items()}


_templates = {}


def _migrated_template(database_url):
    """The name of a PostgreSQL database (or the path of a SQLite file) that `manage.py
    migrate` has built, once per test process; dropped or deleted when the process exits."""
    if database_url not in _templates:
        if database_url:
            import psycopg

            admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
            name = f"cueapi_live_template_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')

            def drop():
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            atexit.register(drop)
            _migrate(database_url.rsplit("/", 1)[0] + "/" + name)
            _templates[database_url] = name
        else:
            directory = tempfile.TemporaryDirectory(prefix="cueapi-live-template-")
            atexit.register(directory.cleanup)
            path = f"{directory.name}/template.sqlite3"
            _migrate(f"sqlite:///{path}")
            # migrate's connection closed cleanly, so the file holds everything (no -wal left).
            assert not Path(path + "-wal").exists() or Path(path + "-wal").stat().st_size == 0
            _templates[database_url] = path
    return _templates[database_url]


def _migrate(database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "cueapi.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env,
                   check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`api_only=True` runs gunicorn without the engine; `spawn()` then starts engine processes."""

    def __init__(self, api_only=False, **env):
        self.api_only = api_only
        self.extra_env = env
        self.children = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tempfile.TemporaryDirectory(prefix="cueapi-live-")
        self.pg_database = None

    def database_url(self):
        """A fresh database for this server, copied from one migrated once per test process
        (`migrate` from nothing took about a second per server)."""
        url = os.environ.get("DATABASE_URL", "")
        if url.startswith(("postgres://", "postgresql://")):
            import psycopg

            self.pg_admin_url = url.rsplit("/", 1)[0] + "/postgres"
            self.pg_database = f"cueapi_live_{uuid.uuid4().hex[:10]}"
            template = _migrated_template(url)
            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_database}" TEMPLATE "{template}"')
            return url.rsplit("/", 1)[0] + "/" + self.pg_database
        path = f"{self.tmp.name}/live.sqlite3"
        shutil.copyfile(_migrated_template(""), path)
        return f"sqlite:///{path}"

    def __enter__(self):
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url(),
            "CUEAPI_ALLOW_PRIVATE_URLS": "true",
            "CUEAPI_POLL_INTERVAL_SECONDS": "1",
            "BASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "cueapi.settings",
            **self.extra_env,
        }
        self.log = open(Path(self.tmp.name) / "server.log", "w+b")
        bind = f"127.0.0.1:{self.port}"
        command = (["-m", "gunicorn", "cueapi.wsgi", "-c", "cueapi/gunicorn.conf.py", "--bind", bind]
                   if self.api_only else ["manage.py", "serve", "--bind", bind])
        self.process = subprocess.Popen([sys.executable, *command], cwd=BASE_DIR, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or its first answer is slow
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def manage(self, *args, **env):
        """Run a management command against this server's database; return its output."""
        return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env={**self.env, **env},
                              check=True, capture_output=True, text=True).stdout

    def spawn(self, *manage_args):
        """Start `manage.py <args>` (run_poller, run_dispatcher) against this server's database."""
        child = subprocess.Popen([sys.executable, "manage.py", *manage_args], cwd=BASE_DIR,
                                 env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.children.append(child)
        return child

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        """Ctrl-C, as a person would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __exit__(self, *exc):
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()
        self.stop()
        self.log.close()
        if self.pg_database:
            import psycopg

            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
        self.tmp.cleanup()


def wait_for_magic_link(mail_dir, timeout=10):
    """The verify link from the newest email the server wrote with EMAIL_URL=filemail://<dir>."""
    mail_dir = Path(mail_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sorted(mail_dir.glob("*"), key=lambda m: m.stat().st_mtime) if mail_dir.exists() else []
        if messages:
            match = re.search(r"(http://\S+/v1/auth/verify\?\S+)", messages[-1].read_text())
            if match:
                return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no magic-link email in {mail_dir} after {timeout} s")


def wait_for(predicate, timeout, interval=0.05):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass
    (then its last value, falsy, is returned for the caller to assert on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
