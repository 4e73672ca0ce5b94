"""Domains declared as data: what sessions declare, how the meter refuses a clash, and a container counted once."""

from __future__ import annotations

import json

import pytest

from energymeter import Measurement, Meter
from energymeter import backends as registry
from energymeter.distributed import merge
from energymeter.domains import ACCELERATOR, CPU, DEVICE, GPU, HOST, PROCESS, SIMULATED, SOC, Domain, infer_domain
from energymeter.errors import DomainConflict, EnergymeterError
from energymeter.kinds import HARDWARE_COUNTER, MODEL, SIMULATOR
from energymeter.measurement import SchemaError
from energymeter.testing import FakeGpu, FakeNVML


@pytest.fixture
def fake_gpu_registered(monkeypatch):
    """The fake second GPU backend, registered with one line, on a copy of the registry that the test drops."""
    from fake_gpu_backend import FakeGpuBackend

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("fake-gpu", "fake_gpu_backend:FakeGpuBackend")
    FakeGpuBackend.opened.clear()
    yield FakeGpuBackend
    registry._default_instances.pop("fake-gpu", None)


# -- the registry and the clash -----------------------------------------------------------------------

def test_a_second_gpu_backend_reporting_gpu_0_beside_nvml_is_refused_naming_both_and_closing_both(
        fake_gpu_registered):
    nvml = FakeNVML([FakeGpu()])
    with pytest.raises(DomainConflict, match=r"domain 'gpu:0' is reported by both 'nvml' and 'fake-gpu'"):
        Meter(["nvml", "fake-gpu"], nvml_module=nvml)
    assert nvml.init_count == 0  # the nvml session was closed
    assert [s.closed for s in fake_gpu_registered.opened] == [True]


def test_the_registered_backend_alone_measures_its_gpu_with_its_declaration(fake_gpu_registered):
    with Meter(["fake-gpu"], fake_gpu_joules=[1.0, 4.5]) as meter:
        meter.begin_window("w")
        m = meter.end_window("w")
    assert dict(m.energy_j) == {"gpu:0": 3.5}
    assert m.domains["gpu:0"] == Domain("gpu:0", GPU, DEVICE, "measured", HARDWARE_COUNTER, "FAKE-GPU-0")
    assert m.devices == {"gpu:0": "FAKE-GPU-0"} and m.total_domains == ("gpu:0",)


def test_register_refuses_a_name_already_taken(fake_gpu_registered):
    with pytest.raises(ValueError, match="'fake-gpu' is already registered"):
        registry.register("fake-gpu", "elsewhere:Other")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("nvml", "fake_gpu_backend:FakeGpuBackend")
    with pytest.raises(ValueError, match="module:Class"):
        registry.register("other", "no_colon_here")


def test_a_domain_conflict_is_an_energymeter_error_and_a_value_error():
    assert issubclass(DomainConflict, EnergymeterError) and issubclass(DomainConflict, ValueError)


# -- what the built-in sessions declare --------------------------------------------------------------

def test_rapl_declares_host_counters_a_package_containing_its_core_and_a_psys_containing_every_zone(powercap):
    powercap.add_package(0, dram=True, core=True)
    powercap.add_package(1, dram=True)
    powercap.add_zone("intel-rapl:2", "psys")
    with Meter(["rapl"], powercap_root=powercap.root) as meter:
        domains = dict(meter.domains)
    assert set(domains) == {"cpu:0:package", "cpu:0:dram", "cpu:0:core", "cpu:1:package", "cpu:1:dram", "cpu:0:psys"}
    assert all(d.device_class == CPU and d.scope == HOST and d.kind == HARDWARE_COUNTER for d in domains.values())
    assert domains["cpu:0:package"].contains == ("cpu:0:core",)
    assert domains["cpu:1:package"].contains == ()
    assert domains["cpu:0:dram"].contains == ()
    assert set(domains["cpu:0:psys"].contains) == set(domains) - {"cpu:0:psys"}
    assert domains["cpu:0:package"].device_id.endswith("intel-rapl:0")


def test_nvml_declares_each_gpu_a_device_by_its_uuid():
    gpu = FakeGpu(uuid="GPU-abc")
    with Meter(["nvml"], nvml_module=FakeNVML([gpu])) as meter:
        assert dict(meter.domains) == {"gpu:0": Domain("gpu:0", GPU, DEVICE, "measured", HARDWARE_COUNTER, "GPU-abc")}


def test_the_cpu_model_is_a_process_model_of_the_cpu():
    with Meter(["cpu-model"]) as meter:
        assert dict(meter.domains) == {"cpu:model": Domain("cpu:model", CPU, PROCESS, "modeled", MODEL)}


def test_a_session_publishing_only_provenance_still_gets_declarations_from_its_backend(monkeypatch, powercap):
    from energymeter.backends.rapl import RaplSession

    powercap.add_package(0)
    original = RaplSession.__init__

    def old_style(self, *args, **kwargs):  # a session as written before declarations: provenance and devices only
        original(self, *args, **kwargs)
        self._session_domains = {}
        self.provenance = {"cpu:0:package": "measured"}
        self.devices = {"cpu:0:package": "/zone"}

    monkeypatch.setattr(RaplSession, "__init__", old_style)
    with Meter(["rapl"], powercap_root=powercap.root) as meter:
        declaration = meter.domains["cpu:0:package"]
    assert (declaration.device_class, declaration.scope, declaration.device_id) == (CPU, HOST, "/zone")


# -- a domain that contains two others is counted once ----------------------------------------------

def _soc_window(soc_j=10.0, **failed):
    """A SoC-like device: one combined figure that contains its CPU and GPU clusters, which it also reports."""
    domains = {
        "soc:0": Domain("soc:0", SOC, HOST, "measured", HARDWARE_COUNTER, "soc0", ("soc:0:cpu", "soc:0:gpu")),
        "soc:0:cpu": Domain("soc:0:cpu", CPU, HOST, "measured", HARDWARE_COUNTER, "soc0-cpu"),
        "soc:0:gpu": Domain("soc:0:gpu", GPU, HOST, "measured", HARDWARE_COUNTER, "soc0-gpu"),
        "cpu:model": Domain("cpu:model", CPU, PROCESS, "modeled", MODEL),
    }
    energy = {"soc:0": soc_j, "soc:0:cpu": 4.0, "soc:0:gpu": 5.0, "cpu:model": 50.0}
    for name in failed:
        energy.pop(name.replace("_", ":"))
    return Measurement(name="w", duration_s=1.0, energy_j=energy, domains=domains,
                       failed={k.replace("_", ":"): v for k, v in failed.items()})


def test_a_domain_that_contains_two_others_counts_once_and_they_do_not():
    m = _soc_window()
    assert m.total_domains == ("soc:0",)  # the CPU model does not count: a CPU counter exists on the host
    assert m.total_energy_j == 10.0 and m.total_complete


def test_the_container_survives_a_json_round_trip_with_its_declarations():
    m = _soc_window()
    data = json.loads(json.dumps(m.to_dict()))
    assert data["schema_version"] == 3
    assert data["domains"]["soc:0"]["contains"] == ["soc:0:cpu", "soc:0:gpu"]
    back = Measurement.from_dict(data)
    assert back == m and back.total_domains == ("soc:0",) and back.total_energy_j == 10.0


def test_a_failed_container_leaves_what_it_contains_to_count_and_marks_the_total_incomplete():
    m = _soc_window(soc_0="lost")
    assert m.total_domains == ("soc:0:cpu", "soc:0:gpu")
    assert m.total_energy_j == 9.0 and not m.total_complete


def test_merge_counts_the_container_once_per_host_across_ranks():
    a, b = _soc_window(soc_j=10.0), _soc_window(soc_j=9.5)
    total = merge([("h1", a), ("h1", b), ("h2", _soc_window(soc_j=7.0))])
    assert total.domains["h1/soc:0"].contains == ("h1/soc:0:cpu", "h1/soc:0:gpu")
    assert total.total_domains == ("h1/soc:0", "h2/soc:0")
    assert total.total_energy_j == 17.0  # the largest reading per host; clusters and models not added
    assert Measurement.from_dict(json.loads(json.dumps(total.to_dict()))).total_energy_j == 17.0


def test_merge_keys_a_device_by_its_declared_id_and_a_process_domain_by_rank():
    def gpu_window(name, device_id):
        return Measurement(name="w", duration_s=1.0, energy_j={name: 3.0, "sim": 1.0}, domains={
            name: Domain(name, GPU, DEVICE, "measured", HARDWARE_COUNTER, device_id),
            "sim": Domain("sim", SIMULATED, PROCESS, "modeled", SIMULATOR)})

    total = merge([("h", gpu_window("gpu:amd:0", "UUID-1")), ("h", gpu_window("gpu:amd:1", "UUID-1"))])
    assert set(total.energy_j) == {"h/gpu:UUID-1", "h/sim:rank0", "h/sim:rank1"}
    assert total.total_domains == ("h/gpu:UUID-1",) and total.total_energy_j == 3.0


def test_two_device_domains_of_one_window_sharing_an_id_stay_per_rank_with_a_warning():
    domains = {n: Domain(n, ACCELERATOR, DEVICE, "measured", HARDWARE_COUNTER, "ACC-1") for n in ("acc:0:a", "acc:0:b")}
    m = Measurement(name="w", duration_s=1.0, energy_j={"acc:0:a": 1.0, "acc:0:b": 2.0}, domains=domains)
    total = merge([("h", m)])
    assert set(total.energy_j) == {"h/acc:0:a:rank0", "h/acc:0:b:rank0"}
    assert sum("share its device id" in w for w in total.warnings) == 2


# -- the checked constructor -------------------------------------------------------------------------

def test_declarations_must_cover_every_domain_and_no_other():
    gpu = Domain("gpu:0", GPU, DEVICE, "measured", HARDWARE_COUNTER)
    with pytest.raises(ValueError, match="without a declaration: cpu:0:package"):
        Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 1.0}, failed={"cpu:0:package": "x"},
                    domains={"gpu:0": gpu})
    with pytest.raises(ValueError, match="neither a figure nor a failure: gpu:0"):
        Measurement(name="w", duration_s=1.0, domains={"gpu:0": gpu})
    with pytest.raises(ValueError, match="must be the Domain named 'gpu:1'"):
        Measurement(name="w", duration_s=1.0, energy_j={"gpu:1": 1.0}, domains={"gpu:1": gpu})
    with pytest.raises(TypeError, match="not both"):
        Measurement(name="w", duration_s=1.0, energy_j={"gpu:0": 1.0}, provenance={"gpu:0": "measured"},
                    domains={"gpu:0": gpu})


def test_a_schema_2_record_reads_with_declarations_inferred_from_its_names():
    data = {"schema_version": 2, "name": "w", "duration_s": 1.0,
            "energy_j": {"cpu:0:package": 10.0, "cpu:0:psys": 30.0, "gpu:0": 2.0},
            "provenance": {"cpu:0:package": "measured", "cpu:0:psys": "measured", "gpu:0": "integrated"},
            "failed": {"cpu:0:core": "lost"}, "devices": {"gpu:0": "GPU-x"},
            "kinds": {"cpu:0:package": "hardware-counter", "cpu:0:psys": "hardware-counter",
                      "gpu:0": "hardware-counter"}}
    m = Measurement.from_dict(data)
    assert m.domains["cpu:0:psys"].contains == ("cpu:0:core", "cpu:0:package")
    assert m.domains["cpu:0:package"].contains == ("cpu:0:core",)
    assert m.domains["gpu:0"] == Domain("gpu:0", GPU, DEVICE, "integrated", HARDWARE_COUNTER, "GPU-x")
    assert m.total_domains == ("cpu:0:psys", "gpu:0") and m.total_complete


def test_an_unknown_name_of_an_old_record_never_counts_and_has_no_kind():
    m = Measurement(name="w", duration_s=1.0, energy_j={"mystery": 5.0}, provenance={"mystery": "measured"})
    assert m.total_domains == () and m.kinds == {}
    assert infer_domain("mystery", "measured", None, "", ("mystery",)).kind == "unknown"


def test_schema_error_is_an_energymeter_error_and_still_a_value_error():
    assert issubclass(SchemaError, EnergymeterError) and issubclass(SchemaError, ValueError)
    with pytest.raises(EnergymeterError):
        Measurement.from_dict({"schema_version": 3, "name": "w", "duration_s": 1.0, "energy_j": {}, "domains": 5})


def test_the_report_table_shows_each_domains_class_and_what_contains_the_ones_left_out():
    from energymeter.display import format_measurement

    rows = {line.split()[0]: line for line in format_measurement(_soc_window()).splitlines()[1:]}
    assert "inside soc:0" in rows["soc:0:cpu"] and " cpu " in rows["soc:0:cpu"]
    assert "not in total" not in rows["soc:0"] and rows["soc:0"].rstrip().endswith("soc")
    assert rows["cpu:model"].endswith("(not in total)")
    assert rows["total"].endswith("(soc:0)")


# -- the container end to end: a backend's declaration through Meter, merge, display and the report ----

def test_a_soc_backends_container_counts_once_through_meter_merge_display_and_the_report(monkeypatch):
    from fake_soc_backend import COMBINED, CPU_CLUSTER, GPU_CLUSTER

    from energymeter.display import format_measurement
    from energymeter.validation.analysis.paper_claims import _cost
    from energymeter.validation.records.record import EpochRecord, RunRecord, WindowRecord

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("fake-soc", "fake_soc_backend:FakeSocBackend")
    try:
        with Meter(["fake-soc"], sync=False) as meter:
            with meter.window("train") as w:
                pass
    finally:
        registry._default_instances.pop("fake-soc", None)
    m = w.result
    assert m.energy_j == {COMBINED: 10.0, CPU_CLUSTER: 4.0, GPU_CLUSTER: 5.0}
    assert m.total_domains == (COMBINED,) and m.total_energy_j == 10.0  # not 19

    total = merge([("h", m), ("h", m)])  # two ranks on one host read the same host-wide counters
    assert total.total_domains == ("h/" + COMBINED,) and total.total_energy_j == 10.0

    text = format_measurement(m)
    total_line = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert text.count(f"(not in total: inside {COMBINED})") == 2 and total_line.endswith(f"measured ({COMBINED})")
    assert "10.000000 J" in total_line

    # The report's energy-to-accuracy figure sums the run's total domains only.
    history = tuple(EpochRecord(k, 1.0, 1.0, 1.0, 0.5 * k, 0.5 * k, 1.0 * k,
                                {d: j * k for d, j in m.energy_j.items()}, 1e6 * k) for k in (1, 2))
    record = RunRecord(model="mlp", dataset="digits", lam=0.0, seed=0, test_accuracy=1.0, activation_energy=1.0,
                       inference=WindowRecord(m, {}, 1, 1), epochs=2, history=history, train=WindowRecord(m))
    assert _cost(record, "energy", 1.0) == pytest.approx(20.0)  # two epochs of the container alone
