"""The front door (issue 20 part 8): a user's slip is one line and exit 2, never a traceback."""

import os
import subprocess
import sys

import pytest

from energymeter.cli import main
from energymeter.validation.records import store


def _one_line_exit_2(argv, capsys, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and needle in err, err


def test_results_jsonl_that_is_a_directory_is_one_line_for_report_and_resume(tmp_path, capsys):
    (tmp_path / store.RESULTS_FILE).mkdir()
    _one_line_exit_2(["report", str(tmp_path)], capsys, "is not a file")


def test_report_of_a_file_says_it_is_a_file(tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("x")
    _one_line_exit_2(["report", str(path)], capsys, "is a file, not a sweep directory")


def test_measure_with_an_empty_output_name_is_refused(capsys):
    _one_line_exit_2(["measure", "-o", "", "--", sys.executable, "-c", "pass"], capsys, "-o needs a file name")


@pytest.mark.parametrize("argv, needle", [
    (["train", "--seed", str(2**64)], "must be at most"),
    (["train", "--seed", "9" * 5000], "at most 40 digits"),
    (["demo", "--steps", str(10**30)], "must be at most"),
])
def test_absurd_counts_and_seeds_are_refused(argv, needle, capsys):
    _one_line_exit_2(argv, capsys, needle)


def test_devices_into_a_closed_pipe_ends_quietly():
    env = {**os.environ, "ENERGYMETER_POWERCAP_ROOT": "/nonexistent"}
    child = subprocess.Popen([sys.executable, "-m", "energymeter", "devices"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # as `| head` does once it has read enough
    _, err = child.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert child.returncode == 0


def test_devices_does_not_call_an_unavailable_backend_measured(capsys):
    from energymeter.backends.base import BackendStatus
    from energymeter.display import format_statuses

    text = format_statuses([BackendStatus("rapl", False, "no powercap tree", (), "measured"),
                            BackendStatus("flops", True, "torch", ("flops",), "counted")])
    assert "unavailable measured" not in text and "rapl       unavailable: no powercap tree" in text
    assert "available   counted [flops]: torch" in text
