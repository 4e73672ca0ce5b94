import json
import sys

import pytest

from energymeter.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_lists_every_backend_with_a_reason(capsys):
    code, out, _ = run(capsys, "devices", "--json")
    assert code == 0
    statuses = json.loads(out)
    assert [s["name"] for s in statuses] == ["rapl", "nvml", "amdsmi", "hwmon", "cpu-model", "flops", "loihi"]
    assert all(s["reason"] for s in statuses)


def test_measure_runs_the_command_and_exits_with_its_status(capsys, tmp_path):
    out_file = tmp_path / "m.json"
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "-o", str(out_file), "--",
                       sys.executable, "-c", "import sys; sum(range(10**6)); sys.exit(3)")
    assert code == 3
    assert "cpu:model" in err and "modeled" in err
    data = json.loads(out_file.read_text())
    assert data["provenance"] == {"cpu:model": "modeled"}
    assert data["energy_j"]["cpu:model"] > 0  # the child's CPU time is counted


def test_measure_json_goes_to_stderr_and_stdout_is_the_commands(capfd):
    code = main(["measure", "--json", "--backend", "cpu-model", "--", sys.executable, "-c", "print(1)"])
    out, err = capfd.readouterr()
    assert code == 0
    assert out == "1\n"  # the command's own output, untouched
    assert json.loads(err)["schema_version"] == 3


@pytest.mark.parametrize("argv, needle", [
    (["measure", "--backend", "nope", "--", "true"], "unknown backend 'nope'"),
    (["measure", "--backend", "flops", "--", "true"], "cannot count another command"),
    (["measure", "--backend", "loihi", "--", "true"], "cannot count another command"),
    (["demo", "--steps", "0"], "must be at least 1"),
    (["measure"], "give the command"),
    (["devices", "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_gets_one_line_and_exit_status_2(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_missing_command_exits_127(capsys):
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "--", "/nonexistent/cmd")
    assert code == 127 and "command not found" in err


def test_unavailable_backend_named_on_the_command_line_exits_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGYMETER_POWERCAP_ROOT", str(tmp_path / "none"))
    import energymeter.backends as registry

    monkeypatch.setattr(registry, "_default_instances", {})
    code, _, err = run(capsys, "measure", "--backend", "rapl", "--", "true")
    assert code == 2 and "no powercap tree" in err


def test_measure_checks_its_output_file_before_running_the_command(capsys, tmp_path):
    marker = tmp_path / "ran"
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "-o", str(tmp_path / "missing" / "m.json"), "--",
                       sys.executable, "-c", f"open({str(marker)!r}, 'w').close()")
    assert code == 2 and "no such directory" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()  # refused before the command ran, not after


def test_a_default_measurement_has_no_simulated_loihi_row(capfd):
    assert main(["measure", "--json", "--", sys.executable, "-c", "pass"]) == 0
    data = json.loads(capfd.readouterr().err)
    assert "loihi:sim" not in data["energy_j"] and data["energy_j"]


def test_report_writes_nothing_outside_its_output_directory(tmp_path):
    import os
    import subprocess

    pytest.importorskip("matplotlib")
    from energymeter import Measurement
    from energymeter.validation.records import store
    from energymeter.validation.records.record import RunRecord, WindowRecord

    out = tmp_path / "sweep"
    out.mkdir()
    for lam in (0.0, 1e-2):
        for seed in range(2):
            m = Measurement(name="inference", duration_s=1.0, energy_j={"cpu:model": 1.0 + seed + lam},
                            provenance={"cpu:model": "modeled"})
            store.append_record(out, RunRecord(model="mlp", dataset="digits", lam=lam, seed=seed, test_accuracy=0.9,
                                               activation_energy=10.0 - 100 * lam, inference=WindowRecord(m)))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "energymeter", "report", str(out)], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(home.iterdir()) == []  # no font cache in ~/.cache: it went under the report directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "sweep"]
