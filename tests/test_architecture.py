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


def test_the_measuring_core_never_imports_the_crosscheck_wing():
    # The wing compares the core with independent peers and may import it; the reverse would measure through it.
    def above_the_core(module):
        return (any(inside(module, wing) for wing in ("energymeter.crosscheck", "energymeter.models",
                                                       "energymeter.validation"))
                or module.startswith("energymeter.cli"))

    checked = {m for m, _ in EDGES if not above_the_core(m)}
    assert {"energymeter.meter", "energymeter.measurement", "energymeter.backends.flops",
            "energymeter.backends.loihi", "energymeter.loihi.simulation"} <= checked
    bad = [(m, t) for m, t in EDGES if m in checked and inside(t, "energymeter.crosscheck")]
    assert bad == []


def test_the_lava_runner_imports_nothing_of_energymeter():
    # It runs as a script in lava's own Python 3.10, where energymeter is not installed.
    targets = [t for m, t in EDGES if m == "energymeter.crosscheck.lava_runner"]
    assert "json" in targets
    assert [t for t in targets if inside(t, "energymeter")] == []


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


def test_the_meter_speaks_the_backend_protocols_and_imports_no_backend_module():
    # Which protocol a session speaks is chosen by its backend's declared kind, not by importing it.
    bad = [t for m, t in EDGES if m == "energymeter.meter" and inside(t, "energymeter.backends")
           and not inside(t, "energymeter.backends.base")]
    assert bad == []


_DOMAIN_NAME_MARKS = ("cpu:", "gpu:", "loihi:", "psys", ":package", ":dram", ":core")
_REGEX_CALLS = ("compile", "match", "fullmatch", "search", "findall", "finditer", "sub", "split")


def domain_name_patterns(path):
    """Regular expressions in a file that read meaning out of domain names (``re.compile(r"cpu:...")``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _REGEX_CALLS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and any(mark in node.args[0].value for mark in _DOMAIN_NAME_MARKS)):
            yield node.args[0].value


def test_only_the_domains_module_reads_domain_names_with_regular_expressions():
    # A domain's meaning is its declaration; only records older than declarations are read by name.
    core = [(m, p) for m, p in modules() if not inside(m, "energymeter.models")
            and not inside(m, "energymeter.validation") and not inside(m, "energymeter.cli")]
    found = {m: list(domain_name_patterns(p)) for m, p in core}
    assert {m for m, patterns in found.items() if patterns} == {"energymeter.domains"}


def test_the_pattern_checker_finds_a_domain_name_regex(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("import re\nHOST_WIDE = re.compile(r'^cpu:\\d+:(?:package|psys)$')\nOK = re.compile(r'package-(\\d+)')\n")
    assert list(domain_name_patterns(path)) == [r"^cpu:\d+:(?:package|psys)$"]
