"""The import layers in .importlinter (ops > alerts > executions > cues > accounts > cueapi, and
cueapi.errors below cueapi.validation) hold, checked with import-linter; and they bite: the same
check on a copy of the code with one upward import added fails and names it. Import-linter sees
imports only, so a model looked up by name (`apps.get_model`) is refused separately."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LAYERED_PACKAGES = ["ops", "alerts", "executions", "cues", "accounts", "cueapi"]
# Known lookups by name, to be removed, not added to: accounts' usage figures count cues and
# executions, two layers up (see the README, "Code layout").
KNOWN_MODEL_LOOKUPS = {"accounts/selectors.py"}


def lint_imports(directory):
    """(passed, report) for `lint-imports` run in `directory`, on its .importlinter."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120)
    return result.returncode == 0, result.stdout + result.stderr


def copy_with_import(tmp_path, module_path, import_line):
    """The layered packages and the contracts, copied to tmp_path, with `import_line` added to
    the module at `module_path`."""
    for package in LAYERED_PACKAGES:
        shutil.copytree(BASE_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE_DIR / ".importlinter", tmp_path)
    module = tmp_path / module_path
    module.write_text(f"{import_line}\n{module.read_text()}")
    return tmp_path


def test_the_code_keeps_its_import_layers():
    passed, report = lint_imports(BASE_DIR)
    assert passed, report


def test_a_production_module_importing_a_higher_layer_breaks_the_contract(tmp_path):
    passed, report = lint_imports(copy_with_import(tmp_path, "cues/selectors.py", "from executions.models import Execution"))
    assert not passed
    assert "cues is not allowed to import executions" in report
    assert "cues.selectors -> executions.models" in report


def test_plumbing_importing_an_app_breaks_the_contract(tmp_path):
    passed, report = lint_imports(copy_with_import(tmp_path, "cueapi/metrics.py", "from ops import overview"))
    assert not passed
    assert "cueapi.metrics -> ops.overview" in report


def test_the_error_envelope_importing_validation_breaks_the_contract(tmp_path):
    passed, report = lint_imports(copy_with_import(tmp_path, "cueapi/errors.py", "from cueapi import validation"))
    assert not passed
    assert "cueapi.errors -> cueapi.validation" in report


def test_production_code_imports_models_instead_of_looking_them_up_by_name():
    """A lookup by name hides a dependency from import-linter: import the model, from a module
    whose layer may depend on it. Migrations must use get_model (historical models)."""
    found = []
    for package in LAYERED_PACKAGES:
        for path in sorted((BASE_DIR / package).rglob("*.py")):
            parts = path.relative_to(BASE_DIR).parts
            if "tests" in parts or "migrations" in parts or path.name == "testing.py":
                continue
            if str(path.relative_to(BASE_DIR)) in KNOWN_MODEL_LOOKUPS:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr == "get_model":
                    found.append(f"{path.relative_to(BASE_DIR)}:{node.lineno}")
    assert not found, found
