"""The wheel is one distribution with three import names and the profiles as package data."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("energymeter-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel(wheel_path):
    with zipfile.ZipFile(wheel_path) as archive:
        return archive.namelist()


@pytest.mark.slow
def test_the_wheel_requires_nothing_and_puts_the_rest_in_extras(wheel_path):
    with zipfile.ZipFile(wheel_path) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("METADATA"))
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires
    assert any("torch" in line and "extra == \"torch\"" in line for line in requires)


@pytest.mark.slow
def test_a_plain_install_without_extras_measures_without_torch(wheel_path, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    # --no-index: any base dependency would have to come from an index, and the install would fail.
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", str(wheel_path)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0
    devices = subprocess.run([str(venv / "bin" / "energymeter"), "devices", "--json"], capture_output=True,
                             text=True, cwd=tmp_path)
    assert devices.returncode == 0, devices.stderr
    flops = next(s for s in json.loads(devices.stdout) if s["name"] == "flops")
    assert not flops["available"] and "pip install 'energymeter[torch]'" in flops["reason"]
    measured = subprocess.run([str(venv / "bin" / "energymeter"), "measure", "--json", "--", "true"],
                              capture_output=True, text=True, cwd=tmp_path)
    assert measured.returncode == 0 and json.loads(measured.stderr)["energy_j"], measured.stderr
    code = ("from energymeter import measure\nwith measure(['cpu-model']) as m:\n    sum(range(10**5))\n"
            "print(m.result.provenance['cpu:model'])")
    window = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert window.returncode == 0 and window.stdout.strip() == "modeled", window.stderr


@pytest.mark.slow
def test_wheel_has_no_top_level_models_or_validation_package(wheel):
    tops = {name.split("/")[0] for name in wheel}
    assert "models" not in tops and "validation" not in tops and "hardware_profiles" not in tops
    assert "energymeter/models/__init__.py" in wheel
    assert "energymeter/validation/__init__.py" in wheel


@pytest.mark.slow
def test_wheel_ships_the_hardware_profiles(wheel):
    assert "energymeter/hardware_profiles/cpu.json" in wheel
    assert "energymeter/testing/fake_nvml.py" in wheel


@pytest.mark.slow
def test_wheel_ships_the_crosscheck_wing_with_the_lava_runner_beside_lava_check(wheel):
    # lava_check finds the runner script by path, next to itself: both must be in the wheel.
    assert {"energymeter/crosscheck/lava_check.py", "energymeter/crosscheck/lava_runner.py",
            "energymeter/crosscheck/peer_meters.py", "energymeter/crosscheck/fvcore_check.py"} <= set(wheel)
    assert "energymeter/loihi/simulation.py" in wheel and "energymeter/loihi/lava_check.py" not in wheel


def test_importing_energymeter_prints_nothing_and_touches_no_hardware():
    code = ("import sys, energymeter, energymeter.validation, energymeter.backends; "
            "assert 'pynvml' not in sys.modules and 'torch' not in sys.modules, 'imported at import time'; "
            "import energymeter.models")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
