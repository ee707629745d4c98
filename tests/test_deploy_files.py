"""Docker can't run here, so check what can be checked: every command that the compose file,
the Dockerfile and the Procfile start exists in this project."""

import importlib
import json
import re
import shlex
from pathlib import Path

import yaml
from django.core.management import get_commands

BASE_DIR = Path(__file__).resolve().parent.parent


def check_command(argv):
    if argv[:2] == ["python", "manage.py"]:
        assert argv[2] in get_commands(), f"no management command {argv[2]}"
    elif argv[0] == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert hasattr(importlib.import_module(module), attr or "application")
        config = argv[argv.index("-c") + 1]
        assert (BASE_DIR / config).is_file(), config
    else:
        raise AssertionError(f"unexpected command {argv}")


def test_compose_services_run_existing_commands():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "api", "poller", "dispatcher"} <= set(services)
    assert services["db"]["image"].startswith("postgres:16")
    for name in ("migrate", "api", "poller", "dispatcher"):
        service = services[name]
        check_command(service["command"])
        assert service["build"] == "."
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["api"] and "healthcheck" in services["db"]


def test_dockerfile_cmd_exists():
    text = (BASE_DIR / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    check_command(cmd)
    assert "requirements.txt" in text


def test_procfile_commands_exist():
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        _, command = line.split(":", 1)
        argv = shlex.split(command.replace("${PORT:-8000}", "8000"))
        check_command(argv)
