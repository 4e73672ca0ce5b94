"""Import directions a reader can trust, read from the source (function-level imports included)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the import name it installs as.
PACKAGES = {"energymeter": "energymeter", "models": "energymeter.models", "validation": "energymeter.validation"}
HEAVY = ("torch", "scipy", "pandas", "matplotlib", "sklearn", "statsmodels", "mlxtend")


def modules():
    """(module name, path) of every source file of the distribution."""
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


def imports(module, path):
    """Every module an ``import`` statement anywhere in the file names (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def inside(name, package):
    return name == package or name.startswith(package + ".")


EDGES = [(m, target) for m, p in modules() for target in imports(m, p)]


def test_the_core_never_imports_the_subject_models_or_the_validation_suite():
    bad = [(m, t) for m, t in EDGES if not inside(m, "energymeter.models") and not inside(m, "energymeter.validation")
           and (inside(t, "energymeter.models") or inside(t, "energymeter.validation"))]
    assert bad == []


def test_nothing_imports_the_cli_but_main():
    bad = [(m, t) for m, t in EDGES if inside(t, "energymeter.cli") and m != "energymeter.__main__"]
    assert bad == []


def test_the_subject_models_never_import_the_validation_suite():
    bad = [(m, t) for m, t in EDGES if inside(m, "energymeter.models") and inside(t, "energymeter.validation")]
    assert bad == []


VALIDATION = "energymeter.validation"
ROOMS = {room: f"{VALIDATION}.{room}" for room in ("run", "records", "analysis", "report")}


def test_the_validation_suite_is_four_rooms_and_its_cli():
    tops = {m for m, _ in modules() if inside(m, VALIDATION) and m.count(".") == 2}
    assert {m for m in tops if m.rsplit(".", 1)[-1] in ROOMS} == set(ROOMS.values())
    # Besides the rooms: the CLI, and the cross-check wing that another change moves out.
    assert tops - set(ROOMS.values()) <= {f"{VALIDATION}.cli", f"{VALIDATION}.crosscheck"}


def test_every_package_folder_is_in_the_wheels_package_list():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {m for m, p in modules() if p.name == "__init__.py"}
    assert found <= listed, sorted(found - listed)


def test_the_records_room_imports_nothing_above_it():
    bad = [(m, t) for m, t in EDGES if inside(m, ROOMS["records"]) and inside(t, VALIDATION)
           and not inside(t, ROOMS["records"])]
    assert bad == []


def test_the_report_room_never_imports_the_run_room():
    bad = [(m, t) for m, t in EDGES if inside(m, ROOMS["report"]) and inside(t, ROOMS["run"])]
    assert bad == []


def test_the_analysis_room_imports_neither_the_run_room_nor_the_reports():
    bad = [(m, t) for m, t in EDGES if inside(m, ROOMS["analysis"])
           and (inside(t, ROOMS["run"]) or inside(t, ROOMS["report"]) or inside(t, f"{VALIDATION}.cli"))]
    assert bad == []


def test_the_room_checker_resolves_imports_between_rooms(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..run import sweep\n")
    assert f"{ROOMS['run']}.sweep" in set(imports(f"{ROOMS['records']}.x", path))


def test_the_simulator_does_not_know_the_measuring_backend():
    bad = [(m, t) for m, t in EDGES if inside(m, "energymeter.loihi") and inside(t, "energymeter.backends")]
    assert bad == []


def test_the_checker_sees_function_level_imports(tmp_path):
    # The checker must find an import buried in a function, or the rules above prove nothing.
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..models import zoo\n")
    assert "energymeter.models.zoo" in set(imports("energymeter.backends.x", path))


def test_a_rapl_or_cpu_model_window_imports_no_heavy_library(tmp_path):
    from energymeter.testing import FakePowercap

    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, dram=True)
    code = ("import sys\n"
            "from energymeter import Meter, measure\n"
            f"with Meter(['rapl'], powercap_root={str(tree.root)!r}) as meter:\n"
            "    meter.begin_window('w'); meter.end_window('w')\n"
            "with measure(['cpu-model']) as m:\n"
            "    sum(range(1000))\n"
            "import energymeter.backends as b; b.available()\n"
            f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
