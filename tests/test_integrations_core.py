"""What the framework integrations share: logger keys with provenance, segments that add up, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from energymeter import Measurement, Meter
from energymeter.distributed import merge
from energymeter.integrations.keys import metric_items
from energymeter.integrations.phases import Phases, add

REPO = Path(__file__).resolve().parent.parent


def window(energy_j, *, failed=None, flops=None, duration_s=1.0, warnings=()):
    return Measurement(name="w", duration_s=duration_s, energy_j=energy_j,
                       provenance={d: "modeled" if "model" in d else "measured" for d in energy_j}, flops=flops,
                       failed=failed or {}, warnings=warnings)


def test_keys_carry_phase_provenance_and_a_domain_name_loggers_accept():
    m = window({"cpu:0:package": 3.0, "cpu:0:dram": 1.0, "cpu:model": 9.0}, flops=12, duration_s=0.5)
    assert metric_items(m, "train_step") == {
        "energy/train_step/measured/cpu_0_package_j": 3.0, "energy/train_step/measured/cpu_0_dram_j": 1.0,
        "energy/train_step/modeled/cpu_model_j": 9.0,
        "energy/train_step/measured/total_j": 4.0,  # the model does not count beside a CPU counter
        "energy/train_step/counted/flops": 12.0, "energy/train_step/duration_s": 0.5,
        "energy/train_step/failed_domains": 0.0}


def test_an_aggregates_keys_keep_the_host_as_a_path_segment_and_count_a_failed_domain():
    total = merge([("node-1", window({"cpu:0:package": 2.0}, failed={"cpu:0:dram": "read error"})),
                   ("node-1", window({"cpu:0:package": 2.0, "cpu:0:dram": 1.0}))])
    items = metric_items(total, "train_epoch")
    assert items["energy/train_epoch/measured/node-1/cpu_0_package_j"] == 2.0
    assert "energy/train_epoch/measured/node-1/cpu_0_dram_j" not in items
    assert items["energy/train_epoch/failed_domains"] == 1.0
    assert "energy/train_epoch/counted/flops" not in items


def test_segments_add_up_and_a_domain_failed_in_one_fails_in_the_sum():
    a = window({"cpu:0:package": 1.5, "cpu:0:dram": 0.5}, flops=10, duration_s=1.0, warnings=("x",))
    b = window({"cpu:0:package": 2.0}, failed={"cpu:0:dram": "lost"}, flops=5, duration_s=2.0, warnings=("x", "y"))
    total = add(add(None, a), b)
    assert dict(total.energy_j) == {"cpu:0:package": 3.5}
    assert dict(total.failed) == {"cpu:0:dram": "lost"}
    assert total.flops == 15 and total.duration_s == 3.0 and total.warnings == ("x", "y")
    assert add(a, window({"cpu:0:package": 1.0, "cpu:0:dram": 1.0})).flops is None  # a partial sum would understate


def test_complete_segments_add_to_what_the_checked_constructor_builds_from_the_hand_sums():
    import random

    rng = random.Random(7)
    for _ in range(200):
        domains = rng.sample(["cpu:0:package", "cpu:0:dram", "cpu:1:package", "gpu:0", "cpu:model"], rng.randint(1, 5))
        parts = [window({d: rng.uniform(0, 1e4) for d in domains}, flops=rng.choice([None, rng.randrange(10**12)]),
                        duration_s=rng.uniform(1e-6, 10), warnings=tuple(rng.sample("abc", rng.randint(0, 2))))
                 for _ in range(rng.randint(1, 6))]
        total = None
        for part in parts:
            total = add(total, part)
        flops = None if any(p.flops is None for p in parts) else sum(p.flops for p in parts)
        energy_j = {d: 0.0 for d in domains}
        duration_s = 0.0
        for part in parts:  # the same order of additions, so the same floats
            energy_j = {d: j + part.energy_j[d] for d, j in energy_j.items()} if part is not parts[0] else dict(
                part.energy_j)
            duration_s = part.duration_s if part is parts[0] else duration_s + part.duration_s
        expected = Measurement(name="w", duration_s=duration_s, energy_j=energy_j, flops=flops,
                               warnings=tuple(dict.fromkeys(w for p in parts for w in p.warnings)),
                               domains=parts[0].domains)
        assert total == expected
        assert dict(total.provenance) == dict(expected.provenance) and total.total_energy_j == expected.total_energy_j
        assert Measurement.from_dict(total.to_dict()) == total


def test_a_paused_phase_is_the_sum_of_its_segments_on_a_real_meter(powercap):
    powercap.add_package(0)
    phases = Phases(["rapl"], powercap_root=str(powercap.root))
    phases.start()
    phases.begin("epoch")
    powercap.set_energy("intel-rapl:0", 1_000_000)
    phases.pause("epoch")
    powercap.set_energy("intel-rapl:0", 5_000_000)  # outside the phase: not counted
    phases.begin("epoch")
    powercap.set_energy("intel-rapl:0", 7_000_000)
    total = phases.end("epoch")
    phases.close()
    assert total.energy_j["cpu:0:package"] == pytest.approx(3.0)
    assert phases.meter is None and phases.end("epoch") is None


def test_a_given_meter_is_used_and_left_open(powercap):
    powercap.add_package(0)
    with Meter(["rapl"], powercap_root=str(powercap.root)) as meter:
        phases = Phases(meter=meter)
        phases.start()
        phases.begin("step")
        assert phases.end("step").energy_j == {"cpu:0:package": 0.0}
        phases.close()
        assert not meter._closed
    assert not phases.distributed and phases.combined(window({"cpu:0:package": 1.0})).energy_j == {
        "cpu:0:package": 1.0}


@pytest.mark.parametrize("module, framework", [("lightning", "lightning"), ("transformers", "transformers"),
                                               ("ray_train", "ray")])
def test_importing_an_integration_imports_neither_its_framework_nor_torch(module, framework):
    code = (f"import sys, energymeter.integrations.{module}\n"
            f"print({framework!r} in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


def test_counts_on_end_agrees_with_the_shadow_passes_ending_runs_on_random_windows():
    import random

    import torch

    from energymeter import Meter

    # The reference is the counter's own tally of shadow passes: ending a window ran one exactly when
    # counts_on_end said it would, over windows of random calls (batch sizes, grad mode, backward or not, repeats).
    rng = random.Random(7)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    meter = Meter(["flops"])
    session = meter._counter
    said = []
    for trial in range(120):
        meter.begin_window("w", model=net)
        for _ in range(rng.randint(0, 3)):
            x = torch.randn(rng.choice([1, 2, 3, 8]), 6)
            if rng.random() < 0.3:
                with torch.no_grad():
                    net(x)
            else:
                out = net(x)
                if rng.random() < 0.5:
                    out.sum().backward()
        predicted = meter.counts_on_end("w")
        before = session.shadow_passes
        meter.end_window("w")
        assert predicted == (session.shadow_passes > before), trial
        said.append(predicted)
    meter.close()
    assert any(said) and not all(said)  # both answers were put to the test


def test_counts_on_end_says_whether_closing_a_window_counts_a_call_not_seen_before(tmp_path):
    import torch

    from energymeter import Meter
    from energymeter.integrations.phases import Phases
    from energymeter.testing import FakePowercap

    net = torch.nn.Linear(4, 2)
    meter = Meter(["flops"])
    meter.begin_window("w", model=net)
    assert not meter.counts_on_end("w")  # no call yet: nothing to count
    net(torch.ones(3, 4))
    assert meter.counts_on_end("w")  # a new call: its shadow pass runs at the end
    assert meter.end_window("w").flops == 2 * 3 * 4 * 2
    for x, new in ((torch.zeros(3, 4), False), (torch.ones(1, 4), True), (torch.ones(3, 4).double(), True)):
        meter.begin_window("w", model=net.double() if x.dtype == torch.float64 else net)
        net(x)
        assert meter.counts_on_end("w") is new, (x.shape, x.dtype)
        meter.end_window("w")
        net.float()
    with torch.no_grad():  # another grad mode: another call
        meter.begin_window("w", model=net)
        net(torch.ones(3, 4))
        assert meter.counts_on_end("w")
        meter.end_window("w")
    meter.begin_window("plain")  # no model: nothing counted at its end
    assert not meter.counts_on_end("plain")
    meter.end_window("plain")
    with pytest.raises(KeyError):
        meter.counts_on_end("plain")
    meter.close()
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0)
    phases = Phases(["rapl"], powercap_root=str(tree.root))  # a lean meter: no counter at all
    phases.start()
    assert not phases.counts_on_end("steps")  # not open
    phases.begin("steps", net)
    net(torch.ones(3, 4))
    assert not phases.counts_on_end("steps")
    phases.end("steps")
    phases.close()
