"""The wheel is one distribution with three import names and the profiles as package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("energymeter-*.whl")
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


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


def test_importing_energymeter_prints_nothing_and_touches_no_hardware():
    code = ("import sys, energymeter, energymeter.validation, energymeter.backends; "
            "assert 'pynvml' not in sys.modules and 'torch' not in sys.modules, 'imported at import time'; "
            "import energymeter.models")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
