"""The front door (issue 20 part 8): a user's slip is one line and exit 2, never a traceback."""

import json
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
    _one_line_exit_2(["validate", "--resume", "--quick", "--quiet", "--out", str(tmp_path)], capsys, "is not a file")
    assert (tmp_path / store.RESULTS_FILE).is_dir() and not (tmp_path / store.SWEEP_FILE).exists()


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


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_devices_output_ends_with_a_newline(flags):
    env = {**os.environ, "ENERGYMETER_POWERCAP_ROOT": "/nonexistent"}
    run = subprocess.run([sys.executable, "-m", "energymeter", "devices", *flags], capture_output=True, env=env,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.endswith(b"\n") and not run.stdout.endswith(b"\n\n"), run.stdout[-80:]


def test_devices_does_not_call_an_unavailable_backend_measured(capsys):
    from energymeter.backends.base import BackendStatus
    from energymeter.display import format_statuses

    text = format_statuses([BackendStatus("rapl", False, "no powercap tree", (), "measured"),
                            BackendStatus("flops", True, "torch", ("flops",), "counted")])
    assert "unavailable measured" not in text and "rapl       unavailable: no powercap tree" in text
    assert "available   counted [flops]: torch" in text


def test_without_torch_devices_lists_loihi_and_flops_as_unavailable_naming_the_extra(monkeypatch):
    import importlib.util

    from energymeter.backends.flops import FlopsBackend
    from energymeter.backends.loihi import LoihiBackend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    for backend in (LoihiBackend(), FlopsBackend()):
        status = backend.probe()
        assert not status.available and "torch is not installed" in status.reason, status
        assert "energymeter[torch]" in status.reason


def test_with_torch_the_loihi_backend_is_available():
    pytest.importorskip("torch")
    from energymeter.backends.loihi import LoihiBackend

    assert LoihiBackend().probe().available


def test_a_probe_that_raises_is_that_backend_unavailable_with_the_error_and_the_others_are_listed(monkeypatch):
    from energymeter import backends

    class Broken(backends.default_backend("cpu-model").__class__):
        def _probe(self):
            raise ValueError("a fault the probe did not foresee")

    real = backends.default_backend
    monkeypatch.setattr(backends, "default_backend", lambda name: Broken() if name == "cpu-model" else real(name))
    statuses = {s.name: s for s in backends.available()}
    assert not statuses["cpu-model"].available
    assert statuses["cpu-model"].reason == "probe failed: ValueError: a fault the probe did not foresee"
    assert set(statuses) == set(backends.REGISTRY)


def test_a_sweep_that_fails_before_its_first_run_leaves_no_sweep_behind(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    argv = ["validate", "--quick", "--quiet", "--backends", "rapl", "--out", str(out), "--epochs", "1"]
    env_root = os.environ.get("ENERGYMETER_POWERCAP_ROOT")
    os.environ["ENERGYMETER_POWERCAP_ROOT"] = str(tmp_path / "no-powercap")  # no RAPL here
    try:
        assert main(argv) == 2
        assert not (out / store.SWEEP_FILE).exists() and not (out / store.RESULTS_FILE).exists()
        capsys.readouterr()
        assert main(argv) == 2  # the same failure again, not "holds a different sweep"
        assert "different sweep" not in capsys.readouterr().err
    finally:
        if env_root is None:
            os.environ.pop("ENERGYMETER_POWERCAP_ROOT", None)
        else:
            os.environ["ENERGYMETER_POWERCAP_ROOT"] = env_root


@pytest.mark.parametrize("argv, needle", [
    (["validate", "--lambdas", "0"], "with 0 alone the sweep compares nothing"),
    (["validate", "--backends", "flops"], "names no energy backend (flops (operation-counter))"),
    (["validate", "--backends", "loihi"], "names no energy backend"),
    (["validate", "--country", ""], "--country needs an ISO 3166-1 alpha-3 code"),
    (["report", ".", "--country", " "], "--country needs an ISO 3166-1 alpha-3 code"),
])
def test_sweeps_that_cannot_decide_what_was_asked_are_refused(tmp_path, argv, needle, capsys):
    pytest.importorskip("torch")
    if argv[0] == "validate":
        argv = [*argv, "--out", str(tmp_path / "out")]
    else:
        argv = ["report", str(tmp_path), *argv[2:]]
    _one_line_exit_2(argv, capsys, needle)


def test_progress_prints_a_line_per_run_when_stderr_is_not_a_terminal(capsys):
    from energymeter.validation.run.progress import Progress

    progress = Progress(2, quiet=False)  # pytest's captured stderr is no terminal
    progress.update("mlp digits lambda=0 seed=0")
    progress.update("mlp digits lambda=0.01 seed=0")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("run 1/2 done (mlp digits lambda=0 seed=0)")
    Progress(1, quiet=True).update("x")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command, args", [("train", ["--help"]), ("validate", ["--quick", "--quiet"]),
                                           ("demo", ["--steps", "1"])])
def test_a_command_whose_library_is_missing_names_the_extra_to_install(tmp_path, command, args):
    if command == "validate":
        args = [*args, "--out", str(tmp_path / "out")]
    hidden = tmp_path / "no-torch" / "torch"
    hidden.mkdir(parents=True)  # a torch that is not there: importing it fails as a missing module does
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    code = f"import sys; from energymeter.cli import main; sys.exit(main([{command!r}, *{args!r}]))"
    env = {**os.environ, "PYTHONPATH": f"{hidden.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"energymeter {command}: needs torch, which is not installed: " \
                                  "pip install 'energymeter[torch]'"


def test_a_cache_link_planted_in_the_output_directory_is_never_written_through(tmp_path):
    from energymeter.validation.report.report import _cache_directory

    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".energymeter-cache").symlink_to(outside, target_is_directory=True)
    chosen = _cache_directory(out)
    assert not chosen.startswith(str(out)) and not chosen.startswith(str(outside))
    assert list(outside.iterdir()) == []  # nothing was made through the link
    clean = tmp_path / "clean"
    clean.mkdir()
    assert _cache_directory(clean) == str(clean / ".energymeter-cache" / "matplotlib")


def test_a_decorated_function_carries_its_kept_results(powercap):
    from energymeter import measure

    powercap.add_package(0)

    @measure(["rapl"], powercap_root=powercap.root, keep=True, name="step", sync=False)
    def step(x):
        return x + 1

    assert step(1) == 2 and step(2) == 3
    assert [m.name for m in step.results] == ["step", "step"]
    assert step.measure.result is step.results[-1]


def test_the_demo_window_opens_after_its_warm_up_steps(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from energymeter import meter as meter_module
    from energymeter.demo import WARMUP_STEPS, run_demo

    steps_taken, at_open = [], []
    real_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps_taken.append(1)
        return real_step(self, *args, **kwargs)

    def recording(real):
        def begin(self, *args, **kwargs):
            at_open.append(len(steps_taken))
            return real(self, *args, **kwargs)
        return begin

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    monkeypatch.setattr(meter_module.Meter, "_begin", recording(meter_module.Meter._begin))
    for name in ("begin_lean", "begin_counted"):  # what a lean or a counter-only meter binds as it opens
        monkeypatch.setattr(meter_module, name, recording(getattr(meter_module, name)))
    text = run_demo(steps=2)
    assert WARMUP_STEPS == 5 and at_open == [5] and len(steps_taken) == 7
    assert "5 warm-up steps before the window" in text


def test_a_report_that_cannot_be_written_renames_the_stale_ones(tmp_path, capsys):
    from test_record_and_store import record

    store.append_record(tmp_path, record(seed=0))
    store.append_record(tmp_path, record(lam=1e-2, seed=0))
    assert main(["report", str(tmp_path), "--format", "md", "--format", "json"]) == 0
    assert (tmp_path / "report.md").exists()
    (tmp_path / store.RESULTS_FILE).write_text("not json\n")  # every record lost to a broken file
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no readable run record" in err and "renamed: report.md.stale, report.json.stale" in err
    assert not (tmp_path / "report.md").exists() and (tmp_path / "report.md.stale").exists()


def test_a_resumed_validate_whose_report_cannot_be_written_renames_the_stale_reports_and_keeps_every_record(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from test_validation import QUICK_ARGS

    out = tmp_path / "out"
    argv = ["validate", *QUICK_ARGS, "--models", "mlp", "--datasets", "digits", "--seeds", "1", "--out", str(out)]
    assert main(argv) == 0
    results = out / store.RESULTS_FILE
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))  # as if interrupted before the last run's record was written
    real = store.write_atomic

    def full_disk_for_reports(path, *args, **kwargs):
        if path.name.startswith("report."):
            raise store.StoreError(f"cannot write {path}: No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store, "write_atomic", full_disk_for_reports)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "renamed: report." in err[0], err
    assert not any(out.glob("report.*[!e]")) and (out / "report.html.stale").exists()  # only .stale ones remain
    assert len(results.read_text().splitlines()) == len(lines)  # the resumed run's record is kept


def test_resume_on_other_energy_backends_is_refused_unless_allowed_and_then_recorded(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from energymeter import backends as registry
    from energymeter.testing import FakePowercap
    from energymeter.validation.run.config import SweepConfig, SweepError
    from energymeter.validation.run.sweep import run_sweep
    from test_validation import QUICK

    def machine(powercap_root):
        monkeypatch.setenv("ENERGYMETER_POWERCAP_ROOT", str(powercap_root))
        registry._default_instances.clear()  # probes are cached per process: a new machine, new probes

    config = SweepConfig(**QUICK)
    out = tmp_path / "out"
    machine(tmp_path / "no-powercap")  # first: no RAPL, so the CPU is modeled
    calls = []

    def stop_after_two(record):
        calls.append(record)
        if len(calls) == 2:
            raise KeyboardInterrupt

    assert run_sweep(config, out, quiet=True, on_record=stop_after_two).ran == 2
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0)
    machine(tree.root)  # then RAPL appears: the rest would be measured
    with pytest.raises(SweepError, match="began on energy backends cpu-model; this machine now finds rapl"):
        run_sweep(config, out, resume=True, quiet=True)
    outcome = run_sweep(config, out, resume=True, quiet=True, allow_backend_change=True)
    assert outcome.skipped == 2 and outcome.ran == 2
    manifest = json.loads((out / store.SWEEP_FILE).read_text())
    assert manifest["backend_changes"] == [{"from": ["cpu-model"], "to": ["rapl"], "after_runs": 2}]
    assert main(["report", str(out), "--format", "md"]) == 0
    assert "continued after 2 run(s) on rapl (--allow-backend-change)" in (out / "report.md").read_text()
    registry._default_instances.clear()


def test_the_paper_preset_names_the_datasets_it_leaves_out_and_refuses_a_root_that_is_not_there(tmp_path, capsys):
    from energymeter.validation.cli import _available_datasets

    with pytest.raises(Exception, match="--root /nonexistent: no such directory"):
        _available_datasets("/nonexistent")
    assert main(["validate", "--preset", "paper", "--quick", "--root", "/nonexistent", "--out",
                 str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert _available_datasets(str(tmp_path))[:2] == ("digits", "mnist-5k")
    err = capsys.readouterr().err
    assert "left out (files not found): mnist, fashion-mnist" in err
    assert _available_datasets(None)[:2] == ("digits", "mnist-5k") and "no --root given" in capsys.readouterr().err
