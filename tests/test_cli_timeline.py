"""``energymeter measure --timeline out.png|out.html -- CMD``: the run's power drawn, its edges marked."""

import importlib.util
import json
import sys

import pytest

from energymeter.cli import main

BUSY = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_png_and_an_html_timeline_are_drawn_and_the_json_keeps_the_points(capsys, tmp_path):
    png, page, record = tmp_path / "t.png", tmp_path / "t.html", tmp_path / "m.json"
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "--timeline", str(png), "--timeline-period-s",
                       "0.05", "-o", str(record), "--", sys.executable, "-c", BUSY)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(record.read_text())
    assert len(data["timeline"]) >= 5 and all("cpu:model" in p["power_w"] for p in data["timeline"])
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "--timeline", str(page), "--",
                       sys.executable, "-c", "pass")
    assert code == 0, err
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'src="data:image/png;base64,' in text
    assert "http" not in text.replace("data:image", "")  # self-contained: nothing fetched from anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "t.html", "t.png"]


@pytest.mark.parametrize("argv, needle", [
    (["--timeline", "out.pdf"], "give a file ending in .png, .html, .htm"),
    (["--timeline", "/nonexistent/dir/t.png"], "no such directory"),
    (["--timeline", "t.png", "--timeline-period-s", "0"], "must be positive"),
    (["--timeline", "t.png", "--timeline-period-s", "nan"], "must be a finite number"),
])
def test_a_bad_timeline_flag_is_one_line_and_exit_2_before_the_command_runs(capsys, tmp_path, monkeypatch, argv,
                                                                              needle):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", *argv, "--", sys.executable, "-c",
                       f"open({str(marker)!r}, 'w')")
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_without_matplotlib_the_timeline_names_the_extra_before_the_command_runs(capsys, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    marker = tmp_path / "ran"
    code, _, err = run(capsys, "measure", "--backend", "cpu-model", "--timeline", str(tmp_path / "t.png"), "--",
                       sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert code == 2 and "needs matplotlib" in err and "energymeter[validate]" in err
    assert not marker.exists()
