import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from energymeter.cli import main  # noqa: E402
from energymeter.validation import store  # noqa: E402
from energymeter.validation.analysis import analyse, correlate  # noqa: E402
from energymeter.validation.sweep import SweepConfig, run_sweep  # noqa: E402

QUICK = dict(lambdas=(0.0, 1e-2), seeds=2, epochs=1, min_window_s=0.05, snn_samples=20, snn_timesteps=5,
             inference_samples=32)


def synthetic(n_seeds=4, lambdas=(0.0, 1e-3, 1e-2), energy_of=lambda e, rng: e, provenance="measured"):
    """Records shaped like a sweep's, with energy a chosen function of E."""
    rng = np.random.RandomState(0)
    records = []
    for lam in lambdas:
        for seed in range(n_seeds):
            e = 100.0 / (1 + 1000 * lam) * (1 + 0.02 * rng.randn())
            joules = energy_of(e, rng)
            records.append({
                "key": f"mlp|digits|{lam!r}|{seed}", "model": "mlp", "dataset": "digits", "lambda": lam, "seed": seed,
                "test_accuracy": 0.95 + 0.001 * rng.randn(), "activation_energy": e, "inference_flops_per_sample": 1e6,
                "inference": {"net_energy_j_per_workload": {"gpu:0": joules}, "duration_s_per_workload": 1.0 + 0.01 * seed,
                              "measurement": {"provenance": {"gpu:0": provenance}}},
                "train": {"measurement": None, "net_energy_j": {}}, "loihi": None,
            })
    return records


def test_analysis_recovers_a_known_correlation_within_its_interval():
    rng = np.random.RandomState(1)
    x = rng.rand(200)
    y = 0.6 * x + 0.8 * rng.randn(200) * x.std()  # population r = 0.6 / sqrt(0.36 + 0.64) = 0.6
    c = correlate("E", "gpu:0", "measured", list(x), list(y))
    assert c.pearson.low < 0.6 < c.pearson.high
    assert c.pearson.high - c.pearson.low < 0.4


def test_constant_proxy_is_reported_not_correlated():
    records = synthetic()
    analysis = analyse(records)
    flops = next(c for c in analysis.correlations if c.proxy == "FLOPs")
    assert flops.pearson is None and "same in every run" in flops.note


def test_claims_say_e_tracks_energy_when_energy_follows_e():
    analysis = analyse(synthetic(energy_of=lambda e, rng: 2.0 * e))
    text = " ".join(analysis.claims)
    assert "this energy falls with E" in text
    assert "E tracks it" in text


def test_claims_flip_when_energy_does_not_follow_e():
    analysis = analyse(synthetic(energy_of=lambda e, rng: 50.0 + 0.5 * rng.randn()))
    text = " ".join(analysis.claims)
    assert "E does not track this energy" in text
    assert "does not reliably track" in text


def test_claims_compare_with_the_paper_thresholds():
    analysis = analyse(synthetic())
    assert "short of the paper's ~1000x" in analysis.claims[0]
    assert "within the paper's 0.5 pp" in analysis.claims[0]


def test_modeled_energy_is_labelled_in_claims():
    analysis = analyse(synthetic(provenance="modeled"))
    assert any("modeled, not measured" in c for c in analysis.claims)
    assert analysis.measured_domains == []


def test_two_models_give_an_anova_with_partial_eta_squared():
    records = synthetic() + [dict(r, model="cnn", key=r["key"].replace("mlp", "cnn"),
                                  test_accuracy=r["test_accuracy"] - 0.05) for r in synthetic()]
    table = analyse(records).anova_accuracy
    model_row = next(t for t in table if t["term"] == "model")
    assert model_row["partial_eta_sq"] > 0.9


def test_corrupt_lines_are_reported_by_number_and_skipped(tmp_path):
    for record in synthetic(n_seeds=1):
        store.append_record(tmp_path, record)
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write('{"key": "broken", "schema_ver')
    lines = (tmp_path / store.RESULTS_FILE).read_text().splitlines()
    lines.insert(1, "not json at all")
    (tmp_path / store.RESULTS_FILE).write_text("\n".join(lines))
    records, problems = store.read_records(tmp_path)
    assert len(records) == 3
    assert [p.line for p in problems] == [2, 5]
    assert "line 2" in str(problems[0])


def test_interrupted_sweep_resumes_with_each_run_exactly_once(tmp_path):
    config = SweepConfig(**QUICK)
    calls = []

    def crash_after_two(record):
        calls.append(record["key"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    outcome = run_sweep(config, tmp_path, quiet=True, on_record=crash_after_two)
    assert outcome.interrupted and outcome.ran == 2
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write('{"key": "mlp|digits|0.0|1", "half')  # a kill during a write
    outcome = run_sweep(config, tmp_path, resume=True, quiet=True)
    assert outcome.skipped == 2 and outcome.ran == 2
    records, problems = store.read_records(tmp_path)
    keys = [r["key"] for r in records]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 4
    assert len(problems) == 1


def test_sigkill_mid_sweep_leaves_only_whole_records(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "energymeter", "validate", "--quick", "--quiet", "--epochs", "1",
                             "--min-window-s", "0.3", "--out", str(out)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / store.RESULTS_FILE).exists() and (out / store.RESULTS_FILE).read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records, problems = store.read_records(out)
    assert len(problems) <= 1  # at most the line being written when the kill landed
    assert main(["validate", "--quick", "--quiet", "--epochs", "1", "--min-window-s", "0.3", "--out", str(out),
                 "--resume"]) == 0
    records, problems = store.read_records(out)
    keys = [r["key"] for r in records]
    assert len(keys) == 4 and len(set(keys)) == 4


def test_validate_writes_every_report_with_provenance(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["validate", "--quick", "--quiet", "--out", str(out), "--country", "FRA"]) == 0
    for fmt in ("html", "md", "csv", "json"):
        assert (out / f"report.{fmt}").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "modeled" in md and "CO2e in FRA" in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    summary = json.loads((out / "report.json").read_text())
    assert summary["runs"] == 4 and summary["claims"]
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["metadata"]["torch"] and sweep["energy_definition"].startswith("E = ")
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert record["inference"]["measurement"]["provenance"]
    assert record["loihi"]["provenance"] == "modeled"
    assert set(record["inference"]["raw_energy_j_per_workload"]) == set(record["inference"]["net_energy_j_per_workload"])


@pytest.mark.parametrize("argv, needle", [
    (["--models", "resnet"], "unknown model 'resnet'"),
    (["--datasets", "cifar"], "unknown dataset 'cifar'"),
    (["--backends", "nope"], "unknown backend 'nope'"),
    (["--lambdas", "0,abc"], "malformed lambda list"),
    (["--lambdas", "1e-3,1e-2"], "must include 0"),
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
    assert "not writable" in capsys.readouterr().err
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
    from energymeter.validation.crosscheck import peers

    with peers({"cpu:model": "modeled"}) as results:
        pass
    assert results["pyRAPL"] == {"not_run": "no measured CPU domain to compare with"}
    assert "no measured domain" in results["codecarbon"]["not_run"]


def test_peers_read_the_same_window_where_a_measured_domain_exists(monkeypatch):
    from energymeter.validation import crosscheck

    calls = []

    def begin():
        calls.append("begin")
        return "handle"

    def end(handle):
        calls.append("end")
        return {"cpu:0:package": 1.5}

    def broken(country=None):
        raise RuntimeError("no permission")

    monkeypatch.setitem(crosscheck.PEERS, "pyRAPL", (begin, end, "cpu"))
    monkeypatch.setitem(crosscheck.PEERS, "codecarbon", (broken, end, "any"))
    with crosscheck.peers({"cpu:0:package": "measured"}) as results:
        assert calls == ["begin"]
    assert calls == ["begin", "end"]
    assert results["pyRAPL"] == {"cpu:0:package": 1.5}
    assert "failed to start: RuntimeError: no permission" in results["codecarbon"]["not_run"]


def test_ctrl_c_stops_cleanly_keeping_every_finished_run(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "energymeter", "validate", "--quick", "--quiet", "--seeds", "4",
                             "--min-window-s", "0.3", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / store.RESULTS_FILE).exists() and (out / store.RESULTS_FILE).read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    records, problems = store.read_records(out)
    assert problems == [] and records
    if interrupted:  # the sweep was still running when Ctrl-C came
        assert proc.returncode == 130, err
        assert "every finished run is kept" in err
        assert (out / "report.md").exists()


def test_valid_json_that_is_not_a_whole_run_record_is_reported(tmp_path):
    record = synthetic(n_seeds=1)[0]
    del record["inference"]["duration_s_per_workload"]
    store.append_record(tmp_path, record)
    records, problems = store.read_records(tmp_path)
    assert records == []
    assert "without inference.duration_s_per_workload" in str(problems[0])
    assert main(["report", str(tmp_path)]) == 2
