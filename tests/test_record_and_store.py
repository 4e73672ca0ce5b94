"""The typed run record (the only code that knows a results line) and the output directory's store."""

import errno
import json
import math
import os

import pytest

from energymeter import Measurement
from energymeter.validation.records import store
from energymeter.validation.records.record import RecordError, RunRecord, WindowRecord, net_energy_j


def window(joules, duration_s=2.0, provenance="measured", idle=None, workloads=1, samples=0):
    m = Measurement(name="w", duration_s=duration_s, energy_j=joules, provenance={d: provenance for d in joules})
    return WindowRecord(m, idle or {}, workloads, samples)


def record(lam=0.0, seed=0, joules=10.0, e=100.0, **kw):
    return RunRecord(model="mlp", dataset="digits", lam=lam, seed=seed, test_accuracy=0.9, activation_energy=e,
                     inference=window({"cpu:0:package": joules}, workloads=4, samples=32), **kw)


def test_idle_subtraction_is_raw_minus_idle_power_times_duration():
    m = Measurement(name="w", duration_s=2.5, energy_j={"a": 30.0, "b": 1.0, "c": 7.0},
                    provenance={"a": "measured", "b": "measured", "c": "modeled"})
    assert net_energy_j(m, {"a": 4.0, "b": 1.0}) == {"a": pytest.approx(20.0), "b": pytest.approx(-1.5), "c": 7.0}


def test_window_figures_per_workload_and_negative_net_are_flagged():
    w = window({"a": 30.0, "b": 1.0}, duration_s=2.0, idle={"a": 5.0, "b": 1.0}, workloads=4, samples=32)
    assert w.net_energy_j_per_workload == {"a": pytest.approx(5.0), "b": pytest.approx(-0.25)}
    assert w.raw_energy_j_per_workload == {"a": pytest.approx(7.5), "b": pytest.approx(0.25)}
    assert w.duration_s_per_workload == pytest.approx(0.5)
    assert w.negative_net == ("b",)


def test_record_round_trips_through_its_versioned_dict():
    r = record(lam=1e-3, seed=2, train=window({"cpu:0:package": 50.0}, idle={"cpu:0:package": 1.0}))
    data = json.loads(json.dumps(r.to_dict()))
    assert data["schema_version"] == 2 and data["key"] == "mlp|digits|0.001|2|l2/sum"
    back = RunRecord.from_dict(data)
    assert back == r
    assert back.train.net_energy_j == {"cpu:0:package": pytest.approx(48.0)}


def v1_line():
    """A results line as energymeter 0.1 wrote it (schema 1)."""
    m = Measurement(name="inference", duration_s=1.0, energy_j={"cpu:model": 8.0}, provenance={"cpu:model": "modeled"})
    md = m.to_dict()
    md["schema_version"] = 1
    del md["devices"]
    return {"schema_version": 1, "key": "mlp|digits|0.01|1", "model": "mlp", "dataset": "digits", "lambda": 0.01,
            "seed": 1, "epochs": 2, "test_accuracy": 0.95, "activation_energy": 12.5, "activation_sparsity": 0.6,
            "energy_definition": "E = ...", "history": [{"epoch": 1, "loss": 1.0, "ce": 0.9, "energy": 10.0,
                                                          "accuracy": 0.8}],
            "train_duration_s": 3.0, "inference_flops_per_sample": 1000.0, "train_flops_per_sample": 3000.0,
            "uncounted_ops": {"aten.relu": 1}, "train": {"measurement": None, "net_energy_j": {}},
            "inference": {"repetitions": 4, "samples_per_repetition": 64, "measurement": md,
                          "cross_checks": {}, "net_energy_j": {"cpu:model": 6.0}},
            "loihi": None, "idle_power_w": {"cpu:model": 2.0}, "finished_at": 1.0}


def test_schema_1_lines_still_load_with_their_idle_baseline():
    r = RunRecord.from_dict(v1_line())
    assert (r.model, r.lam, r.seed, r.activation_energy_kind) == ("mlp", 0.01, 1, "l2/sum")
    assert r.history[0].activation_energy == 10.0
    assert r.inference.net_energy_j_per_workload == {"cpu:model": pytest.approx((8.0 - 2.0) / 4)}
    assert r.train is None


def test_unknown_schema_versions_and_missing_fields_are_refused_by_name():
    with pytest.raises(RecordError, match="schema_version 7; this energymeter reads 1, 2"):
        RunRecord.from_dict({"schema_version": 7})
    data = record().to_dict()
    del data["inference"]
    with pytest.raises(RecordError, match="without inference"):
        RunRecord.from_dict(data)
    with pytest.raises(RecordError, match="not a JSON object"):
        RunRecord.from_dict([1])


def test_corrupt_lines_are_reported_by_number_and_skipped(tmp_path):
    store.append_record(tmp_path, record(seed=0))
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write("not json\n")
        handle.write(json.dumps({"schema_version": 2, "model": "x"}) + "\n")
    store.append_record(tmp_path, record(seed=1))
    records, problems = store.read_records(tmp_path)
    assert [r.seed for r in records] == [0, 1]
    assert [p.line for p in problems] == [2, 3]
    assert "line 2: not valid JSON" in str(problems[0]) and "without" in str(problems[1])


def test_a_record_missing_only_its_newline_is_kept_once_after_the_next_append(tmp_path):
    store.append_record(tmp_path, record(seed=0))
    path = tmp_path / store.RESULTS_FILE
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    records, problems = store.read_records(tmp_path)
    assert len(records) == 1 and problems == []  # a whole record, just unterminated
    store.append_record(tmp_path, record(seed=1))
    records, problems = store.read_records(tmp_path)
    assert [r.seed for r in records] == [0, 1] and problems == []


def test_a_half_written_line_costs_only_itself(tmp_path):
    store.append_record(tmp_path, record(seed=0))
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write('{"schema_version": 2, "model": "ml')
    store.append_record(tmp_path, record(seed=1))
    records, problems = store.read_records(tmp_path)
    assert [r.seed for r in records] == [0, 1]
    assert len(problems) == 1 and "interrupted" in problems[0].reason or "not valid JSON" in problems[0].reason


def test_links_in_the_output_directory_are_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / store.RESULTS_FILE)
    with pytest.raises(store.StoreError, match="symbolic link"):
        store.append_record(out, record())
    os.symlink(victim, out / "report.md")
    store.write_atomic(out / "report.md", "report")
    assert victim.read_text() == "precious"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() == "report"
    for name in os.listdir(out):
        assert not name.endswith(".tmp")


def test_planted_write_test_link_does_not_truncate_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / ".energymeter-write-test")
    os.symlink(victim, out / f".energymeter-write-test.{os.getpid()}")
    with pytest.raises(store.StoreError):
        store.check_writable(out)  # the unique probe name is a link: refused, not followed
    assert victim.read_text() == "precious"


def test_disk_full_leaves_the_previous_file_intact_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("old report")
    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(store.StoreError, match="no space left"):
        store.write_atomic(path, "x" * 10_000)
    monkeypatch.undo()
    assert path.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_disk_full_during_an_append_keeps_every_finished_record(tmp_path, monkeypatch):
    store.append_record(tmp_path, record(seed=0))
    before = (tmp_path / store.RESULTS_FILE).read_bytes()

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(store.StoreError, match="no space left"):
        store.append_record(tmp_path, record(seed=1))
    monkeypatch.undo()
    assert (tmp_path / store.RESULTS_FILE).read_bytes() == before


def test_a_second_lock_on_the_same_directory_is_refused(tmp_path):
    import subprocess
    import sys

    with store.lock(tmp_path):
        code = ("import sys; from pathlib import Path; from energymeter.validation.records import store\n"
                "try:\n    store.lock(Path(sys.argv[1])).__enter__()\nexcept store.StoreError as e:\n"
                "    print(e); sys.exit(3)")
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert proc.returncode == 3 and "in use by another sweep" in proc.stdout
    with store.lock(tmp_path):  # released when the first holder left
        pass


def test_an_epochs_cumulative_figures_say_so_and_lines_with_the_old_names_still_read():
    from energymeter.validation.records.record import EpochRecord

    epoch = EpochRecord(3, 1.0, 0.9, 10.0, 0.8, 0.7, 6.5, {"cpu:model": 30.0}, 9e6)
    data = epoch.to_dict()
    assert {"cumulative_duration_s", "cumulative_energy_j", "cumulative_flops"} <= set(data)
    assert not {"duration_s", "energy_j", "flops"} & set(data)
    assert EpochRecord.from_dict(data) == epoch
    old = {"epoch": 3, "loss": 1.0, "ce": 0.9, "activation_energy": 10.0, "train_accuracy": 0.8,
           "test_accuracy": 0.7, "duration_s": 6.5, "energy_j": {"cpu:model": 30.0}, "flops": 9e6}
    assert EpochRecord.from_dict(old) == epoch


def test_a_run_spec_keys_its_run_as_the_record_does_and_refuses_a_bad_lambda():
    from energymeter.validation.records.spec import RunSpec, SpecError

    spec = RunSpec("mlp", "digits", 1e-3, 2, "l1")
    assert spec.key == "mlp|digits|0.001|2|l1/sum" and spec.activation_energy_kind == "l1/sum"
    r = RunRecord.from_dict({**record(lam=1e-3, seed=2).to_dict(), "activation_energy_kind": "l1/sum"})
    assert r.spec == spec and r.key == spec.key
    for bad in (-1e-3, math.inf, math.nan):
        with pytest.raises(SpecError, match="lambda must be a finite number >= 0"):
            RunSpec("mlp", "digits", bad, 0)
        with pytest.raises(RecordError, match="lambda must be a finite number >= 0"):
            RunRecord.from_dict({**record().to_dict(), "lambda": bad})


def test_record_errors_are_energymeter_errors_and_still_value_errors():
    from energymeter.errors import EnergymeterError

    assert issubclass(RecordError, EnergymeterError) and issubclass(RecordError, ValueError)


def test_the_sweep_manifest_round_trips_and_reads_a_partial_file(tmp_path):
    from energymeter.validation.records.manifest import SweepManifest, read_manifest, write_manifest

    assert read_manifest(tmp_path) is None
    manifest = SweepManifest("ab12", {"country": "FRA", "lambdas": [0.0, 0.01]}, {"l2": "E = ..."}, ("rapl",), 40,
                             ("k1", "k2"), {"host": "h"})
    write_manifest(tmp_path, manifest)
    assert json.loads((tmp_path / store.SWEEP_FILE).read_text())["reference_reps"] == 40
    back = read_manifest(tmp_path)
    assert back == manifest and back.country == "FRA"
    (tmp_path / store.SWEEP_FILE).write_text(json.dumps({"fingerprint": "0000"}))
    partial = read_manifest(tmp_path)
    assert partial.fingerprint == "0000" and partial.reference_reps is None and partial.country is None
    (tmp_path / store.SWEEP_FILE).write_text(json.dumps({"reference_reps": "many"}))
    with pytest.raises(store.StoreError, match="not a sweep manifest"):
        read_manifest(tmp_path)
    (tmp_path / store.SWEEP_FILE).write_text("[1, 2]")
    with pytest.raises(store.StoreError, match="not a JSON object"):
        read_manifest(tmp_path)
