"""The sweep end to end: verdicts on fake hardware, resume, kills, Ctrl-C, the lock, bad input."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from energymeter import Meter  # noqa: E402
from energymeter.cli import main  # noqa: E402
from energymeter.validation.records import store  # noqa: E402
from energymeter.validation.analysis.analysis import analyse  # noqa: E402
from energymeter.validation.run.config import SweepConfig  # noqa: E402
from energymeter.validation.run.sweep import LocalExecutor, run_sweep  # noqa: E402

QUICK = dict(lambdas=(0.0, 1e-2), seeds=2, epochs=1, min_window_s=0.05, idle_s=0.01, reference_s=0.01,
             snn_samples=20, snn_timesteps=5, inference_samples=32)
QUICK_ARGS = ["--quick", "--quiet", "--epochs", "1", "--min-window-s", "0.05", "--idle-s", "0.01", "--reference-s",
              "0.01"]


class FakeCounters:
    """A reader for a fake powercap tree: package 0 advances by seeded log-normal noise on every read (its power
    has nothing to do with the work); package 1 advances at a constant 20 W of wall time."""

    def __init__(self, powercap):
        self.rng = np.random.RandomState(0)
        self.start = time.monotonic()
        self.noise_uj = 0
        self.lock = threading.Lock()
        powercap.add_package(0)
        powercap.add_package(1)
        self.root = str(powercap.root)

    def __call__(self, path):
        with self.lock:
            if path.endswith("intel-rapl:0/energy_uj"):
                self.noise_uj += int(1e4 * math.exp(2.0 * self.rng.randn()))
                return f"{self.noise_uj}\n"
            if path.endswith("intel-rapl:1/energy_uj"):
                return f"{int((time.monotonic() - self.start) * 20e6)}\n"
        with open(path) as handle:
            return handle.read()


@pytest.mark.slow
def test_verdicts_on_fake_hardware_noise_is_inconclusive_constant_power_does_not_track_loihi_tracks(powercap, tmp_path):
    counters = FakeCounters(powercap)
    # A ceiling far above the noise steps (up to ~30 J a read) and low enough that the fake range (262 kJ)
    # still wraps slowly enough to be polled (2.6 s at 100 kW).
    meter = Meter(["rapl"], powercap_root=counters.root, reader=counters, max_power_w=1e5)
    config = SweepConfig(models=("mlp",), datasets=("digits",), lambdas=(0.0, 1e-2), seeds=3, epochs=3,
                         min_window_s=0.1, idle_s=0.02, reference_s=0.02, snn_samples=40, snn_timesteps=20,
                         inference_samples=64, backends=("rapl",))
    run_sweep(config, tmp_path / "out", quiet=True, executor=LocalExecutor(meter))
    meter.close()
    records, problems = store.read_records(tmp_path / "out")
    assert len(records) == 6 and problems == []
    analysis = analyse(records)
    tracking = {(c.figure, c.subject["lambda"]): c for c in analysis.claims if c.kind == "energy_tracking"}
    noise = [c for (figure, _), c in tracking.items() if "cpu:0:package" in figure]
    # Constant power: the net figure is about zero (unusable, flagged); the raw one is power x time.
    constant = tracking[("inference cpu:1:package (raw J per workload)", 1e-2)]
    assert noise and all(c.verdict == "inconclusive" for c in noise), [(c.verdict, c.sentence) for c in noise]
    # Raw J per workload at constant power is power x time per workload: scheduling noise on a busy host, never
    # a finding (the family's control withdraws what a lone interval may say).
    assert constant.verdict in ("does_not_track", "inconclusive"), constant.sentence
    loihi = tracking[("loihi:sim loihi1 (modeled J per input)", 1e-2)]
    # Three seeds give the modeled Loihi figure an interval that tracks; Holm over the sweep's tracking claims may
    # withdraw it (p of three seeds), and then says so.
    before = loihi.details.get("verdict_before_control", loihi.verdict)
    assert before == "tracks", loihi.sentence
    assert loihi.verdict == "tracks" or (loihi.details["withdrawn_by"] == "holm" and "controlled together"
                                         in loihi.sentence), loihi.sentence


def test_interrupted_sweep_resumes_in_the_recorded_order_with_each_run_once(tmp_path):
    config = SweepConfig(**QUICK)
    calls = []

    def crash_after_two(record):
        calls.append(record.key)
        if len(calls) == 2:
            raise KeyboardInterrupt

    outcome = run_sweep(config, tmp_path, quiet=True, on_record=crash_after_two)
    assert outcome.interrupted and outcome.ran == 2
    outcome = run_sweep(config, tmp_path, resume=True, quiet=True)
    assert outcome.skipped == 2 and outcome.ran == 2
    records, problems = store.read_records(tmp_path)
    assert problems == [] and sorted(r.run_index for r in records) == [0, 1, 2, 3]
    order = json.loads((tmp_path / store.SWEEP_FILE).read_text())["run_order"]
    assert [r.key for r in sorted(records, key=lambda r: r.run_index)] == order
    assert order != sorted(order, key=lambda k: (k.split("|")[3], float(k.split("|")[2])))  # not seed, then lambda


def test_run_order_is_random_but_fixed_by_its_seed():
    config = SweepConfig(lambdas=(0.0, 1e-5, 1e-4, 1e-3, 1e-2), seeds=3)
    assert config.runs() == SweepConfig(lambdas=config.lambdas, seeds=3).runs()
    assert config.runs() != config.grid()
    assert sorted(config.runs()) == sorted(config.grid())
    assert SweepConfig(lambdas=config.lambdas, seeds=3, order_seed=1).runs() != config.runs()


def test_each_run_keeps_its_own_idle_baseline_and_reference(tmp_path):
    run_sweep(SweepConfig(**QUICK), tmp_path, quiet=True)
    records, _ = store.read_records(tmp_path)
    idles = [r.inference.idle_power_w for r in records]
    assert all(idle and "cpu:model" in idle for idle in idles)
    assert len({json.dumps(dict(i), sort_keys=True) for i in idles}) > 1  # measured around each run, not once
    assert all(r.reference is not None and r.reference.workloads > 0 for r in records)
    assert all(r.load is not None and r.load.samples >= 1 for r in records)
    assert all(len(r.history) == 1 and r.history[0].test_accuracy is not None for r in records)
    assert all(r.history[0].cumulative_energy_j and r.activation_energy_per_layer for r in records)


CHILD = textwrap.dedent("""
    import os, sys, time
    real_write = os.write
    def slow_write(fd, data):
        data = bytes(data)
        if b'"schema_version": 2' in data and len(data) > 200:  # a results line: write half, then stall
            real_write(fd, data[: len(data) // 2])
            open(sys.argv[1], "w").close()
            time.sleep(60)
        return real_write(fd, data)
    os.write = slow_write
    from energymeter.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.slow
def test_a_kill_while_a_record_is_being_written_loses_only_that_line(tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "writing"
    argv = ["validate", *QUICK_ARGS, "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), *argv], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the sweep never started writing a record"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records, problems = store.read_records(out)
    assert records == [] and len(problems) == 1  # the half line, reported; nothing else lost
    assert main(["validate", *QUICK_ARGS, "--out", str(out), "--resume"]) == 0
    records, problems = store.read_records(out)
    assert len(records) == 4 and len({r.key for r in records}) == 4 and len(problems) == 1


SIGINT_CHILD = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from energymeter.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_keeping_every_finished_run(tmp_path):
    out = tmp_path / "out"
    # The child installs Python's own SIGINT handler: a suite started as a background job (SIGINT ignored,
    # which a child inherits) must still see Ctrl-C reach the sweep.
    proc = subprocess.Popen([sys.executable, "-c", SIGINT_CHILD, "validate", *QUICK_ARGS, "--seeds", "20",
                             "--out", str(out)], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / store.RESULTS_FILE).exists() and (out / store.RESULTS_FILE).read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the 40-run sweep finished before Ctrl-C could be sent"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "every finished run is kept" in err
    records, problems = store.read_records(out)
    assert problems == [] and 1 <= len(records) < 40
    assert (out / "report.md").exists()


def test_validate_prints_the_claims_with_their_verdicts(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["validate", *QUICK_ARGS, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "claims:" in err and "[inconclusive]" in err or "[tracks]" in err or "[does_not_track]" in err
    summary = json.loads((out / "report.json").read_text())
    assert summary["runs"] == 4 and {c["kind"] for c in summary["claims"]} >= {"e_reduction", "energy_tracking"}


def test_usage_errors_are_energymeter_errors():
    from energymeter.cliargs import UsageError
    from energymeter.errors import EnergymeterError

    assert issubclass(UsageError, EnergymeterError)


def test_the_validate_flags_offer_the_sweeps_own_tables():
    import argparse

    from energymeter.validation.cli import configure_validate
    from energymeter.validation.run.config import ACTIVATION_ENERGY_KINDS, EXECUTORS, PRESETS

    parser = argparse.ArgumentParser()
    configure_validate(parser)
    actions = {a.dest: a for a in parser._actions}
    assert tuple(actions["preset"].choices) == PRESETS and tuple(actions["executor"].choices) == EXECUTORS
    assert ",".join(ACTIVATION_ENERGY_KINDS) in actions["activation_energies"].help


def test_validate_resume_as_make_run_calls_it_prints_a_line_per_run_when_stderr_is_a_pipe(tmp_path):
    # make run is `validate --resume`; here on the quick sweep of 2 runs, its stderr a pipe (no terminal).
    args = [a for a in QUICK_ARGS if a != "--quiet"]
    run = subprocess.run([sys.executable, "-m", "energymeter", "validate", "--resume", *args, "--seeds", "1",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("run ")]
    assert [line.split(" done")[0] for line in lines] == ["run 1/2", "run 2/2"], run.stderr[-2000:]


def test_a_second_sweep_on_a_locked_directory_gets_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    with store.lock(out):
        code = subprocess.run([sys.executable, "-m", "energymeter", "validate", *QUICK_ARGS, "--out", str(out)],
                              capture_output=True, text=True)
    assert code.returncode == 2 and "in use by another sweep" in code.stderr
    assert len(code.stderr.strip().splitlines()) == 1
    assert not (out / store.RESULTS_FILE).exists()


def test_resume_refuses_results_without_their_sweep_json(tmp_path, capsys):
    out = tmp_path / "o"
    run_sweep(SweepConfig(**{**QUICK, "seeds": 1, "lambdas": (0.0, 1e-2)}), out, quiet=True)
    (out / store.SWEEP_FILE).unlink()
    before = (out / store.RESULTS_FILE).read_bytes()
    assert main(["validate", *QUICK_ARGS, "--epochs", "7", "--out", str(out), "--resume"]) == 2
    assert "no sweep.json" in capsys.readouterr().err
    assert (out / store.RESULTS_FILE).read_bytes() == before


@pytest.mark.parametrize("argv, needle", [
    (["--models", "resnet"], "unknown model 'resnet'"),
    (["--datasets", "cifar"], "unknown dataset 'cifar'"),
    (["--backends", "nope"], "unknown backend 'nope'"),
    (["--lambdas", "0,abc"], "malformed lambda list"),
    (["--lambdas", "0,0"], "repeats a value"),
    (["--lambdas", "1e-3,1e-2"], "must include 0"),
    (["--activation-energy", "l3"], "unknown activation energy definition 'l3'"),
    (["--min-window-s", "inf"], "must be a finite number"),
    (["--min-window-s", "0"], "must be positive"),
    (["--out", ""], "must not be empty"),
    (["--country", "XXX"], "unknown country code"),
    (["--device", "cuda:0"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "device"),
])
def test_validate_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, needle):
    assert main(["validate", "--quick", "--quiet", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_unwritable_or_foreign_output_directory_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["validate", "--quick", "--quiet", "--out", str(blocker / "sub")]) == 2
    assert "cannot be created" in capsys.readouterr().err
    out = tmp_path / "o"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"fingerprint": "0000"}))
    (out / "results.jsonl").write_text("")
    assert main(["validate", "--quick", "--quiet", "--out", str(out)]) == 2
    assert "holds a different sweep" in capsys.readouterr().err
    assert (out / "sweep.json").read_text() == json.dumps({"fingerprint": "0000"})  # nothing recorded is lost


def test_report_on_a_directory_without_results_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no results.jsonl" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_peers_are_not_run_without_a_measured_domain_and_say_why():
    from energymeter.crosscheck.peer_meters import peers

    from energymeter.domains import Domain

    model = Domain("cpu:model", "cpu", "process", "modeled", "model")
    gpu = Domain("gpu:0", "gpu", "device", "measured", "hardware-counter")
    with peers({"cpu:model": model}) as results:
        pass
    assert results["pyRAPL"] == {"not_run": "no measured CPU domain to compare with"}
    assert "no measured domain" in results["codecarbon"]["not_run"]
    with peers({"gpu:0": gpu}) as results:  # measured, but no CPU: the CPU peer is not run
        pass
    assert results["pyRAPL"] == {"not_run": "no measured CPU domain to compare with"}


def test_peers_read_the_same_window_where_a_measured_domain_exists(monkeypatch):
    from energymeter.crosscheck import peer_meters

    calls = []

    def begin():
        calls.append("begin")
        return "handle"

    def end(handle):
        calls.append("end")
        return {"cpu:0:package": 1.5}

    def broken(country=None):
        raise RuntimeError("no permission")

    monkeypatch.setitem(peer_meters.PEERS, "pyRAPL", (begin, end, "cpu"))
    monkeypatch.setitem(peer_meters.PEERS, "codecarbon", (broken, end, "any"))
    from energymeter.domains import Domain

    # Chosen by its declaration (device class cpu), not by its name.
    package = Domain("socket0-pkg", "cpu", "host", "measured", "hardware-counter", "/sys/x")
    with peer_meters.peers({"socket0-pkg": package}) as results:
        assert calls == ["begin"]
    assert calls == ["begin", "end"]
    assert results["pyRAPL"] == {"cpu:0:package": 1.5}
    assert "failed to start: RuntimeError: no permission" in results["codecarbon"]["not_run"]
