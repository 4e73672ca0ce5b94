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
    assert [s["name"] for s in statuses] == ["rapl", "nvml", "cpu-model", "flops", "loihi"]
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
    assert json.loads(err)["schema_version"] == 2


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
