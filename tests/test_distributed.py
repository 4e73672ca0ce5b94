"""energymeter.distributed: the merge rule on hand-made windows, and aggregate() over real gloo process groups."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from energymeter import EnergymeterError, Measurement
from energymeter.distributed import DistributedError, aggregate, host_id, merge
from energymeter.testing import FakePowercap

REPO = Path(__file__).resolve().parent.parent


def window(energy_j=None, provenance=None, *, duration_s=1.0, start_time_s=100.0, flops=None, failed=None,
           warnings=(), devices=None, uncounted_ops=None, name="step"):
    energy_j = energy_j or {}
    if provenance is None:
        provenance = {d: "modeled" if "model" in d else "measured" for d in energy_j}
    return Measurement(name=name, duration_s=duration_s, energy_j=energy_j, provenance=provenance, flops=flops,
                       failed=failed or {}, warnings=warnings, start_time_s=start_time_s, devices=devices or {},
                       uncounted_ops=uncounted_ops or {})


# -- merge: the pure rule ---------------------------------------------------------------------------

def test_two_ranks_on_one_host_count_its_package_and_dram_once():
    a = window({"cpu:0:package": 50.0, "cpu:0:dram": 8.0})
    b = window({"cpu:0:package": 50.0, "cpu:0:dram": 8.0})
    total = merge([("h1", a), ("h1", b)])
    assert dict(total.energy_j) == {"h1/cpu:0:package": 50.0, "h1/cpu:0:dram": 8.0}
    assert total.total_energy_j == 58.0
    assert a.total_energy_j + b.total_energy_j == 116.0  # what one tracker per rank would report


def test_the_same_package_on_two_hosts_counts_once_per_host():
    a = window({"cpu:0:package": 50.0})
    b = window({"cpu:0:package": 30.0})
    total = merge([("h1", a), ("h2", b)])
    assert dict(total.energy_j) == {"h1/cpu:0:package": 50.0, "h2/cpu:0:package": 30.0}
    assert total.total_energy_j == 80.0


def test_host_wide_readings_over_misaligned_windows_take_the_largest_and_warn():
    a = window({"cpu:0:package": 50.0})
    b = window({"cpu:0:package": 40.0})
    total = merge([("h1", a), ("h1", b)])
    assert total.energy_j["h1/cpu:0:package"] == 50.0
    assert any("not aligned" in w and "h1/cpu:0:package" in w for w in total.warnings)


def test_readings_within_ten_percent_take_the_largest_without_a_warning():
    total = merge([("h1", window({"cpu:0:package": 50.0})), ("h1", window({"cpu:0:package": 47.0}))])
    assert total.energy_j["h1/cpu:0:package"] == 50.0
    assert total.warnings == ()


def test_two_ranks_sharing_a_gpu_count_it_once_by_uuid_whatever_its_cuda_index():
    a = window({"gpu:0": 100.0}, devices={"gpu:0": "GPU-shared"})
    b = window({"gpu:0": 60.0, "gpu:1": 100.0}, devices={"gpu:0": "GPU-own", "gpu:1": "GPU-shared"})
    total = merge([("h1", a), ("h1", b)])
    assert dict(total.energy_j) == {"h1/gpu:GPU-shared": 100.0, "h1/gpu:GPU-own": 60.0}
    assert dict(total.devices) == {"h1/gpu:GPU-shared": "GPU-shared", "h1/gpu:GPU-own": "GPU-own"}
    assert total.total_energy_j == 160.0


def test_a_gpu_without_uuid_counts_per_rank_with_a_warning():
    a = window({"gpu:0": 10.0})
    b = window({"gpu:0": 20.0})
    total = merge([("h1", a), ("h1", b)], ranks=[4, 5])
    assert dict(total.energy_j) == {"h1/gpu:0:rank4": 10.0, "h1/gpu:0:rank5": 20.0}
    assert total.total_energy_j == 30.0
    assert sum("no GPU UUID" in w for w in total.warnings) == 2


def test_a_psys_host_counts_psys_and_not_its_packages_while_another_host_counts_packages():
    psys_host = window({"cpu:0:psys": 90.0, "cpu:0:package": 50.0, "cpu:0:dram": 9.0})
    plain_host = window({"cpu:0:package": 40.0, "cpu:0:dram": 5.0})
    total = merge([("p", psys_host), ("p", psys_host), ("q", plain_host), ("q", plain_host)])
    assert set(total.total_domains) == {"p/cpu:0:psys", "q/cpu:0:package", "q/cpu:0:dram"}
    assert total.total_energy_j == 135.0


def test_modeled_cpu_sums_over_ranks_only_on_hosts_without_a_cpu_counter():
    counted = window({"cpu:0:package": 50.0, "cpu:model": 7.0})
    modeled_a = window({"cpu:model": 3.0})
    modeled_b = window({"cpu:model": 4.0})
    total = merge([("h1", counted), ("h1", counted), ("h2", modeled_a), ("h2", modeled_b)])
    assert total.energy_j["h2/cpu:model:rank2"] == 3.0
    assert total.energy_j["h2/cpu:model:rank3"] == 4.0
    assert "h1/cpu:model:rank0" in total.energy_j and "h1/cpu:model:rank0" not in total.total_domains
    assert total.total_energy_j == 57.0
    assert total.total_provenance == "modeled"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -5.0])
@pytest.mark.parametrize("bad_rank", [0, 1])
def test_a_non_finite_or_negative_reading_on_any_rank_fails_the_domain_on_every_rank(bad, bad_rank):
    good = window({"cpu:0:package": 10.0, "cpu:0:dram": 2.0})
    hostile = window({"cpu:0:package": 10.0, "cpu:0:dram": 2.0})
    object.__setattr__(hostile, "energy_j", {"cpu:0:package": bad, "cpu:0:dram": 2.0})  # as a broken rank sends it
    pair = [good, hostile] if bad_rank == 1 else [hostile, good]
    total = merge([("h1", pair[0]), ("h1", pair[1])])
    assert "h1/cpu:0:package" not in total.energy_j
    assert total.failed["h1/cpu:0:package"] == f"rank {bad_rank}: read {bad!r} J, not a finite non-negative figure"
    assert total.energy_j == {"h1/cpu:0:dram": 2.0} and total.total_energy_j == 2.0 and not total.total_complete


def test_a_total_that_would_overflow_fails_its_domains_instead_of_the_call():
    a, b = window({"cpu:0:package": 1e308}), window({"cpu:0:package": 1e308})
    c = window({"gpu:0": 3.0}, devices={"gpu:0": "GPU-1"})
    total = merge([("h1", a), ("h2", b), ("h3", c)])
    assert "total would overflow a float" in total.failed["h1/cpu:0:package"]
    assert total.energy_j == {"h2/cpu:0:package": 1e308, "h3/gpu:GPU-1": 3.0}
    assert total.total_energy_j == 1e308 + 3.0 and not total.total_complete


def test_a_domain_failed_on_one_rank_fails_in_the_aggregate_with_that_ranks_reason():
    ok = window({"gpu:0": 100.0, "cpu:0:package": 50.0}, devices={"gpu:0": "GPU-x"})
    lost = window({"cpu:0:package": 50.0}, failed={"gpu:1": "NVML: GPU is lost"}, devices={"gpu:1": "GPU-x"})
    total = merge([("h1", ok), ("h1", lost)])
    assert "h1/gpu:GPU-x" not in total.energy_j
    assert dict(total.failed) == {"h1/gpu:GPU-x": "rank 1: NVML: GPU is lost"}
    assert total.energy_j["h1/cpu:0:package"] == 50.0
    assert total.total_energy_j == 50.0


def test_a_domain_failed_on_two_ranks_keeps_both_reasons():
    a = window(failed={"cpu:0:package": "permission denied"})
    b = window(failed={"cpu:0:package": "read error"})
    total = merge([("h1", a), ("h1", b)])
    assert total.failed["h1/cpu:0:package"] == "rank 0: permission denied; rank 1: read error"


def test_provenance_of_a_shared_gpu_and_of_the_total_is_the_weakest():
    a = window({"gpu:0": 100.0}, {"gpu:0": "measured"}, devices={"gpu:0": "GPU-x"})
    b = window({"gpu:0": 99.0}, {"gpu:0": "integrated"}, devices={"gpu:0": "GPU-x"})
    c = window({"cpu:0:package": 10.0}, {"cpu:0:package": "measured"})
    total = merge([("h1", a), ("h1", b), ("h2", c)])
    assert total.provenance["h1/gpu:GPU-x"] == "integrated"
    assert total.provenance["h2/cpu:0:package"] == "measured"
    assert total.total_provenance == "integrated"


def test_duration_is_the_longest_window_and_start_the_earliest():
    total = merge([("h1", window(duration_s=1.5, start_time_s=10.0)),
                   ("h1", window(duration_s=2.25, start_time_s=10.5)),
                   ("h2", window(duration_s=0.5, start_time_s=9.75))])
    assert total.duration_s == 2.25
    assert total.start_time_s == 9.75


def test_flops_and_uncounted_operators_sum_over_ranks():
    a = window(flops=1_000, uncounted_ops={"aten::foo": 2})
    b = window(flops=2_500, uncounted_ops={"aten::foo": 1, "aten::bar": 4})
    total = merge([("h1", a), ("h2", b)])
    assert total.flops == 3_500
    assert dict(total.uncounted_ops) == {"aten::foo": 3, "aten::bar": 4}


def test_flops_counted_on_some_ranks_only_give_none_and_a_warning():
    total = merge([("h1", window(flops=1_000)), ("h1", window(flops=None))], ranks=[0, 1])
    assert total.flops is None
    assert any("ranks 1 counted no FLOPs" in w for w in total.warnings)


def test_warnings_are_prefixed_by_rank_and_names_kept():
    total = merge([("h1", window(warnings=("short window",))), ("h1", window(warnings=("wrap",), name="other"))],
                  ranks=[2, 7])
    assert total.warnings == ("rank 2: short window", "rank 7: wrap")
    assert total.name == "step|other"


def test_rapl_devices_of_the_aggregate_are_the_zone_paths():
    a = window({"cpu:0:package": 5.0}, devices={"cpu:0:package": "/sys/class/powercap/intel-rapl:0"})
    total = merge([("h1", a), ("h1", a)])
    assert dict(total.devices) == {"h1/cpu:0:package": "/sys/class/powercap/intel-rapl:0"}


def test_ranks_of_one_host_naming_different_zones_for_a_domain_count_it_once_with_a_warning():
    a = window({"cpu:0:package": 5.0}, devices={"cpu:0:package": "/sys/class/powercap/intel-rapl:0"})
    b = window({"cpu:0:package": 5.0}, devices={"cpu:0:package": "/elsewhere/intel-rapl:0"})
    total = merge([("h1", a), ("h1", b)])
    assert total.total_energy_j == 5.0
    assert any("different devices" in w for w in total.warnings)


def test_aggregate_survives_a_json_round_trip():
    a = window({"cpu:0:package": 5.0, "gpu:0": 2.0}, devices={"gpu:0": "GPU-x"}, flops=3)
    total = merge([("h1", a), ("h2", a)])
    again = Measurement.from_dict(json.loads(json.dumps(total.to_dict())))
    assert again == total
    assert again.total_energy_j == 14.0


@pytest.mark.parametrize("bad", [
    lambda: merge([]),
    lambda: merge([("h/1", window())]),
    lambda: merge([("", window())]),
    lambda: merge([("h1", window({"x/cpu:0:package": 1.0}))]),
    lambda: merge([("h1", window()), ("h1", window())], ranks=[3, 3]),
])
def test_merge_refuses_input_it_cannot_combine(bad):
    with pytest.raises(ValueError):
        bad()


def test_merge_agrees_with_a_brute_force_count_on_random_layouts():
    import random

    rng = random.Random(12)
    for _ in range(200):
        hosts = [f"h{i}" for i in range(rng.randint(1, 3))]
        truth = {}  # (host, identity) -> joules, drawn once
        for h in hosts:
            for s in range(rng.randint(1, 2)):
                truth[(h, f"cpu:{s}:package")] = rng.uniform(1, 100)
            for g in range(rng.randint(0, 3)):
                truth[(h, f"GPU-{h}-{g}")] = rng.uniform(1, 300)
        pairs = []
        for _rank in range(rng.randint(len(hosts), 6)):
            h = rng.choice(hosts)
            gpus = [k[1] for k in truth if k[0] == h and k[1].startswith("GPU-")]
            seen = rng.sample(gpus, rng.randint(0, len(gpus)))
            energy = {d: truth[(h, d)] for (hh, d) in truth if hh == h and d.startswith("cpu:")}
            energy.update({f"gpu:{i}": truth[(h, u)] for i, u in enumerate(seen)})
            pairs.append((h, window(energy, devices={f"gpu:{i}": u for i, u in enumerate(seen)})))
        seen_keys = {(h, d) for h, w in pairs for d in w.energy_j if d.startswith("cpu:")}
        seen_keys |= {(h, w.devices[d]) for h, w in pairs for d in w.energy_j if d.startswith("gpu:")}
        expected = math.fsum(truth[k] for k in seen_keys)
        assert merge(pairs).total_energy_j == pytest.approx(expected, rel=1e-12)


# -- host identity --------------------------------------------------------------------------------

def test_host_id_is_the_override_when_set(monkeypatch):
    monkeypatch.setenv("ENERGYMETER_HOST_ID", "node-7")
    assert host_id() == "node-7"


def test_host_id_is_hostname_and_boot_id_prefix(monkeypatch, tmp_path):
    monkeypatch.delenv("ENERGYMETER_HOST_ID", raising=False)
    monkeypatch.setattr("socket.gethostname", lambda: "trainer3")
    boot = tmp_path / "boot_id"
    boot.write_text("3f2a9c1e-0b7d-4d2a-9e1f-000000000000\n")
    assert host_id(str(boot)) == "trainer3-3f2a9c1e"
    assert host_id(str(tmp_path / "missing")) == "trainer3"


def test_host_id_override_with_a_slash_is_refused(monkeypatch):
    monkeypatch.setenv("ENERGYMETER_HOST_ID", "rack/node")
    with pytest.raises(DistributedError, match="no '/'"):
        host_id()


# -- aggregate() over process groups --------------------------------------------------------------

def test_aggregate_without_an_initialised_process_group_raises_a_clear_error():
    pytest.importorskip("torch.distributed")
    with pytest.raises(DistributedError, match="not initialised") as info:
        aggregate(window({"cpu:0:package": 1.0}))
    assert isinstance(info.value, EnergymeterError)


def test_importing_the_module_does_not_import_torch():
    code = "import sys, energymeter.distributed; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@pytest.fixture
def single_rank_group(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield dist
    dist.destroy_process_group()


def test_aggregate_of_one_rank_is_its_window_keyed_by_host(single_rank_group, monkeypatch):
    monkeypatch.setenv("ENERGYMETER_HOST_ID", "solo")
    own = window({"cpu:0:package": 5.0, "gpu:0": 2.0}, devices={"gpu:0": "GPU-x"}, flops=7)
    total = aggregate(own)
    assert dict(total.energy_j) == {"solo/cpu:0:package": 5.0, "solo/gpu:GPU-x": 2.0}
    assert total.total_energy_j == own.total_energy_j
    assert total.flops == 7


def test_aggregate_with_a_bad_host_id_raises_after_the_collective(single_rank_group, monkeypatch):
    monkeypatch.setenv("ENERGYMETER_HOST_ID", "a/b")
    with pytest.raises(DistributedError, match="rank 0: .*no '/'"):
        aggregate(window({"cpu:0:package": 5.0}))


def test_aggregate_refuses_something_that_is_not_a_measurement(single_rank_group):
    with pytest.raises(DistributedError, match="takes a Measurement, not dict"):
        aggregate({"cpu:0:package": 5.0})


# -- 4 ranks, 2 simulated hosts, torchrun ---------------------------------------------------------

#: Joules each counter gains during the window. Host 0 has two sockets; its GPU-A0 is seen by both its ranks.
ZONE_J = {"sim-host-0": {"intel-rapl:0": 30.0, "intel-rapl:0:0": 5.0, "intel-rapl:1": 20.0, "intel-rapl:1:0": 4.0},
          "sim-host-1": {"intel-rapl:0": 40.0, "intel-rapl:0:0": 6.0}}
GPU_J = {"sim-host-0": {"GPU-A0": 100.0, "GPU-A1": 50.0}, "sim-host-1": {"GPU-B0": 70.0, "GPU-B1": 80.0}}
VISIBLE = [("sim-host-0", ["GPU-A0"]), ("sim-host-0", ["GPU-A1", "GPU-A0"]),
           ("sim-host-1", ["GPU-B0"]), ("sim-host-1", ["GPU-B1"])]


def test_four_ranks_on_two_hosts_aggregate_to_the_trees_truth(tmp_path):
    pytest.importorskip("torch.distributed")
    hosts = {}
    for h, sockets in (("sim-host-0", 2), ("sim-host-1", 1)):
        tree = FakePowercap(tmp_path / h / "powercap")
        for s in range(sockets):
            zone = tree.add_package(s, dram=True, energy_uj=1_000_000 * (s + 1))
        gpu_dir = tmp_path / h / "gpu"
        gpu_dir.mkdir()
        for uuid in GPU_J[h]:
            (gpu_dir / f"{uuid}.mj").write_text("123456\n")
        hosts[h] = {"powercap": str(tree.root), "gpu_dir": str(gpu_dir), "gpus": sorted(GPU_J[h]),
                    "zone_j": ZONE_J[h], "gpu_j": GPU_J[h]}
    assert zone == "intel-rapl:0"
    ranks = [{"host": h, "visible": v, "plays_hardware": i % 2 == 0} for i, (h, v) in enumerate(VISIBLE)]
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"hosts": hosts, "ranks": ranks}))
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "ENERGYMETER_HOST_ID")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
           str(REPO / "tests" / "distributed_worker.py"), str(layout), str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(4)]
    aggregates = [Measurement.from_dict(r["aggregate"]) for r in results]
    assert all(a == aggregates[0] for a in aggregates), "every rank must get the same aggregate"
    total = aggregates[0]
    truth_j = math.fsum(j for zones in ZONE_J.values() for j in zones.values()) \
        + math.fsum(j for gpus in GPU_J.values() for j in gpus.values())
    naive_j = math.fsum(Measurement.from_dict(r["own"]).total_energy_j for r in results)
    assert truth_j == 405.0
    assert total.total_energy_j == pytest.approx(truth_j, rel=0.01)
    assert naive_j == pytest.approx(610.0, rel=0.01)  # CPU counters and GPU-A0 each counted twice
    assert set(total.total_domains) == {
        "sim-host-0/cpu:0:package", "sim-host-0/cpu:0:dram", "sim-host-0/cpu:1:package", "sim-host-0/cpu:1:dram",
        "sim-host-0/gpu:GPU-A0", "sim-host-0/gpu:GPU-A1", "sim-host-1/cpu:0:package", "sim-host-1/cpu:0:dram",
        "sim-host-1/gpu:GPU-B0", "sim-host-1/gpu:GPU-B1"}
    assert total.energy_j["sim-host-0/gpu:GPU-A0"] == pytest.approx(100.0)
    assert total.total_provenance == "measured"
    assert total.failed == {}


def test_merge_keeps_each_domains_declared_kind_so_the_total_reads_it():
    from energymeter.distributed import merge

    window = Measurement(name="w", duration_s=1.0, energy_j={"acc:0": 4.0, "cpu:model": 1.0},
                         provenance={"acc:0": "measured", "cpu:model": "modeled"},
                         kinds={"acc:0": "hardware-counter", "cpu:model": "model"})
    merged = merge([("h", window)])
    assert merged.kinds["h/acc:0:rank0"] == "hardware-counter"
    assert merged.total_energy_j == pytest.approx(5.0)


def test_an_old_style_mig_uuid_with_slashes_still_counts_once():
    from energymeter.distributed import merge

    def gpu_window():
        return Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 3.0}, provenance={"gpu:0": "measured"},
                           devices={"gpu:0": "MIG-GPU-abc/1/0"})
    merged = merge([("h", gpu_window()), ("h", gpu_window())])
    assert merged.total_energy_j == pytest.approx(3.0)
    assert list(merged.energy_j) == ["h/gpu:MIG-GPU-abc:1:0"]
