import json

import pytest

from energymeter import Measurement
from energymeter.measurement import SchemaError


def make(energy, provenance=None, failed=None):
    provenance = provenance or {d: "measured" for d in energy}
    return Measurement(name="w", duration_s=1.0, energy_j=energy, provenance=provenance, failed=failed or {})


def test_total_adds_package_and_dram_of_every_socket_and_gpus():
    m = make({"cpu:0:package": 10.0, "cpu:0:dram": 2.0, "cpu:1:package": 8.0, "cpu:0:core": 7.0, "gpu:0": 100.0})
    assert m.total_energy_j == pytest.approx(120.0)
    assert "cpu:0:core" not in m.total_domains


def test_total_uses_psys_instead_of_package_and_dram():
    m = make({"cpu:0:package": 10.0, "cpu:0:dram": 2.0, "cpu:0:psys": 15.0, "gpu:0": 1.0})
    assert m.total_domains == ("cpu:0:psys", "gpu:0")
    assert m.total_energy_j == pytest.approx(16.0)


def test_modeled_cpu_is_not_added_where_a_cpu_counter_exists():
    m = make({"cpu:0:package": 10.0, "cpu:model": 40.0}, {"cpu:0:package": "measured", "cpu:model": "modeled"})
    assert m.total_energy_j == pytest.approx(10.0)
    assert m.total_provenance == "measured"


def test_modeled_cpu_is_not_added_where_the_cpu_counter_failed():
    m = make({"cpu:model": 40.0}, {"cpu:model": "modeled"}, failed={"cpu:0:package": "lost"})
    assert m.total_energy_j == 0.0
    assert m.total_provenance is None


def test_modeled_cpu_counts_when_it_is_the_only_cpu_domain_and_weakens_the_total_provenance():
    m = make({"cpu:model": 40.0, "gpu:0": 5.0}, {"cpu:model": "modeled", "gpu:0": "measured"})
    assert m.total_energy_j == pytest.approx(45.0)
    assert m.total_provenance == "modeled"


def test_simulated_loihi_energy_is_never_in_the_total():
    m = make({"loihi:sim": 0.5, "cpu:model": 1.0}, {"loihi:sim": "modeled", "cpu:model": "modeled"})
    assert m.total_domains == ("cpu:model",)


def test_every_domain_needs_a_valid_provenance():
    with pytest.raises(ValueError):
        Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 1.0}, provenance={})
    with pytest.raises(ValueError):
        Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 1.0}, provenance={"gpu:0": "guessed"})


def test_measurement_is_immutable_including_its_dicts():
    m = make({"gpu:0": 1.0})
    with pytest.raises(Exception):
        m.duration_s = 2.0
    with pytest.raises(TypeError):
        m.energy_j["gpu:0"] = 5.0


def test_to_dict_is_json_safe_and_round_trips():
    m = Measurement(name="w", duration_s=1.5, energy_j={"gpu:0": 3.0}, provenance={"gpu:0": "integrated"},
                    flops=42, uncounted_ops={"aten.relu": 2}, failed={"cpu:0:package": "x"}, warnings=("short",))
    data = json.loads(json.dumps(m.to_dict()))
    assert data["schema_version"] == 3
    assert data["total_energy_j"] == 3.0
    assert data["flops_provenance"] == "counted"
    assert Measurement.from_dict(data) == m


def test_from_dict_rejects_other_schema_versions_and_garbage():
    with pytest.raises(SchemaError, match="schema_version"):
        Measurement.from_dict({"schema_version": 99})
    with pytest.raises(SchemaError):
        Measurement.from_dict({"schema_version": 1, "name": "w"})
    with pytest.raises(SchemaError):
        Measurement.from_dict([1, 2])


def test_schema_1_measurements_still_load_without_devices():
    data = make({"gpu:0": 2.0}).to_dict()
    data["schema_version"] = 1
    del data["devices"]
    assert Measurement.from_dict(data).devices == {}


def test_devices_round_trip():
    m = Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 1.0}, provenance={"gpu:0": "measured"},
                    devices={"gpu:0": "GPU-abc"})
    assert Measurement.from_dict(m.to_dict()).devices == {"gpu:0": "GPU-abc"}


def test_total_rule_applies_per_host_when_domains_carry_a_host():
    m = make({"a/cpu:0:package": 10.0, "a/cpu:0:psys": 30.0, "b/cpu:0:package": 5.0, "b/cpu:0:dram": 1.0,
              "a/gpu:GPU-1": 7.0, "b/cpu:model:rank1": 100.0, "c/cpu:model:rank2": 2.0},
             {d: "measured" for d in ("a/cpu:0:package", "a/cpu:0:psys", "b/cpu:0:package", "b/cpu:0:dram",
                                      "a/gpu:GPU-1")} | {"b/cpu:model:rank1": "modeled", "c/cpu:model:rank2": "modeled"})
    assert m.total_domains == ("a/cpu:0:psys", "a/gpu:GPU-1", "b/cpu:0:dram", "b/cpu:0:package", "c/cpu:model:rank2")
    assert m.total_energy_j == pytest.approx(30 + 7 + 1 + 5 + 2)


def test_the_total_rule_reads_each_domains_declared_kind():
    energy = {"cpu:0:package": 10.0, "gpu:0": 5.0, "gpu:model": 40.0, "cpu:model": 7.0, "acc:0": 2.0}
    kinds = {"cpu:0:package": "hardware-counter", "gpu:0": "simulator", "gpu:model": "model",
             "cpu:model": "model", "acc:0": "hardware-counter"}
    m = Measurement(name="w", duration_s=1.0, energy_j=energy, provenance={d: "modeled" for d in energy}, kinds=kinds)
    # gpu:0 was declared a simulator: not counted, so no GPU counter exists and the GPU model counts;
    # the CPU model does not (a CPU counter exists); an unknown counter's own hardware counts.
    assert m.total_domains == ("acc:0", "cpu:0:package", "gpu:model")
    with pytest.raises(ValueError, match="unknown backend kind"):
        Measurement(name="w", duration_s=1.0, energy_j={"x": 1.0}, provenance={"x": "measured"}, kinds={"x": "magic"})


def test_a_meters_windows_carry_each_domains_kind(powercap):
    from energymeter import Meter

    powercap.add_package(0)
    with Meter(["rapl", "cpu-model"], powercap_root=powercap.root) as meter:
        meter.begin_window("w")
        m = meter.end_window("w")
    assert m.kinds == {"cpu:0:package": "hardware-counter", "cpu:model": "model"}
    assert m.total_domains == ("cpu:0:package",)
    assert Measurement.from_dict(m.to_dict()).kinds == m.kinds


def test_a_failed_psys_leaves_the_sockets_to_count_and_marks_the_total_incomplete():
    m = make({"cpu:0:package": 10.0, "cpu:0:dram": 2.0}, failed={"cpu:1:psys": "lost"})
    assert m.total_energy_j == pytest.approx(12.0)  # not 0 J: a failed psys stands in for nothing
    assert not m.total_complete and m.to_dict()["total_complete"] is False


def test_a_failed_package_marks_the_total_incomplete_and_a_failed_core_does_not():
    m = make({"cpu:0:dram": 2.0, "gpu:0": 5.0}, failed={"cpu:0:package": "lost"})
    assert m.total_energy_j == pytest.approx(7.0) and not m.total_complete
    assert make({"cpu:0:package": 1.0}, failed={"cpu:0:core": "lost"}).total_complete
    assert make({"cpu:0:package": 1.0}).total_complete
