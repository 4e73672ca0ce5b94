"""The torch simulator's lava mode gives exactly lava-nc's spikes, neuron by neuron (lava runs in its own Python 3.10).

Networks are drawn at random from the family the README claims (a bias-driven LIF layer, then 2-4
Dense+LIF layers, widths 3-200, signed / sparse / heavy-tailed / integer weights, du and dv in {0, small,
1, random}, a threshold per layer, 20-120 steps; plus networks fed by external spikes), from a seed drawn
afresh each run (``ENERGYMETER_LAVA_SEED`` replays one; failures name it). Every run includes one network
of 200-wide layers over 100+ steps, and three whose threshold was moved to within 1e-7 of a potential the
network reaches (``plant_near_tie``): there float32 arithmetic flips a spike, so those comparisons can fail.
All networks go to lava in one subprocess.
"""

import json
import os
import random
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from energymeter.crosscheck.lava_check import (RUNNER, LavaUnavailable, find_lava_python,  # noqa: E402
                                               random_network, random_spikes, run_lava)
from energymeter.crosscheck.lava_reference import plant_near_tie, reference_spikes  # noqa: E402
from energymeter.loihi import simulate  # noqa: E402

SEED = int(os.environ.get("ENERGYMETER_LAVA_SEED") or random.SystemRandom().randrange(2**31))
PLAIN, NEAR_TIES, WITH_INPUTS = 10, 3, 3


@pytest.fixture(scope="module")
def lava_python():
    try:
        return find_lava_python()
    except LavaUnavailable as exc:
        pytest.skip(f"lava-nc cross-check skipped: {exc}")


def draw_cases(seed):
    """(label, network, spikes or None, timesteps) for one run, all drawn from ``seed``."""
    rng = random.Random(seed)
    cases = [("wide", random_network(rng.randrange(2**31), widths=[200, 200, 200, 200]), None, rng.randint(100, 120))]
    planted = 0
    for _ in range(40):
        if planted == NEAR_TIES:
            break
        net_seed, timesteps = rng.randrange(2**31), rng.randint(20, 120)
        found = plant_near_tie(random_network(net_seed), timesteps, net_seed)
        if found is not None:
            cases.append(("near-tie", found[0], None, timesteps))
            planted += 1
    for _ in range(PLAIN):
        cases.append(("plain", random_network(rng.randrange(2**31)), None, rng.randint(20, 120)))
    for _ in range(WITH_INPUTS):
        inputs, timesteps, net_seed = rng.randint(3, 100), rng.randint(20, 120), rng.randrange(2**31)
        spikes = random_spikes(2, timesteps, inputs, rng.uniform(0.1, 0.5), seed=net_seed)
        cases.append(("inputs", random_network(net_seed, input_size=inputs), spikes, timesteps))
    return cases


@pytest.fixture(scope="module")
def comparison(lava_python):
    cases = draw_cases(SEED)
    runs = run_lava([(net, spikes, steps) for _, net, spikes, steps in cases], record="neurons", python=lava_python,
                    timeout_s=600)
    ours = [simulate(net, spikes, steps, record="neurons") for _, net, spikes, steps in cases]
    return cases, runs, ours


def test_exact_lava_mode_matches_lava_neuron_for_neuron_on_the_same_networks(comparison):
    # exact=True sums each Dense as lava does (numpy), so it holds on any network, not only these.
    cases, runs, _ = comparison
    for (label, net, spikes, steps), run in zip(cases, runs):
        sim = simulate(net, spikes, steps, record="neurons", exact=True)
        for name in net.names:
            assert torch.equal(sim.neuron_spikes[name], run.neuron_spikes[name]), \
                f"seed {SEED}, {label} network {net.sizes}: layer {name} differs in exact mode"


def test_torch_lava_mode_matches_lava_neuron_for_neuron_on_random_networks(comparison):
    cases, runs, ours = comparison
    for (label, net, _, steps), run, sim in zip(cases, runs, ours):
        where = f"seed {SEED}, {label} network {net.sizes} over {steps} steps"
        for name in net.names:
            assert torch.equal(sim.neuron_spikes[name], run.neuron_spikes[name]), f"{where}: layer {name} differs"
            per_step = [sum(sample[int(name)][t] for sample in run.spikes) for t in range(steps)]
            assert sim.spikes_per_timestep[name] == per_step, f"{where}: layer {name} counts differ"
    labels = [label for label, *_ in cases]
    assert labels.count("near-tie") == NEAR_TIES, f"seed {SEED}: could not plant every near-threshold neuron"
    layers = [(run.neuron_spikes[name].any().item()) for (_, net, _, _), run in zip(cases, runs) for name in net.names]
    assert sum(layers) >= 0.8 * len(layers), f"seed {SEED}: most layers silent, the comparison would be vacuous"


def test_independent_float64_reimplementation_agrees_with_lava(comparison):
    cases, runs, _ = comparison
    for (label, net, spikes, steps), run in zip(cases, runs):
        for sample, ref in enumerate(reference_spikes(net, spikes, steps, np.float64)):
            for index, name in enumerate(net.names):
                assert np.array_equal(ref.spikes[index], run.neuron_spikes[name][sample].numpy()), \
                    f"seed {SEED}, {label} network {net.sizes}: layer {name}, sample {sample}"


def test_near_threshold_networks_come_within_1e7_and_float32_would_get_them_wrong(comparison):
    cases, runs, ours = comparison
    near = [(net, steps, run, sim)
            for (label, net, _, steps), run, sim in zip(cases, runs, ours) if label == "near-tie"]
    assert near, f"seed {SEED}: no near-threshold network in the comparison"
    for net, steps, run, sim in near:
        (ref64,) = reference_spikes(net, None, steps, np.float64)
        (ref32,) = reference_spikes(net, None, steps, np.float32)
        gap, layer, step, neuron = ref64.closest_to_threshold()
        assert gap < 1e-7, f"seed {SEED}: closest approach {gap:g} is not a near tie"
        lava_trains = [run.neuron_spikes[name][0].numpy() for name in net.names]
        assert any(not np.array_equal(a, b) for a, b in zip(ref32.spikes, lava_trains)), \
            f"seed {SEED}: float32 arithmetic matched lava too, the near tie tests nothing"
        assert all(torch.equal(sim.neuron_spikes[name][0], run.neuron_spikes[name][0]) for name in net.names)


def test_wide_long_network_is_compared_and_active(comparison):
    cases, runs, _ = comparison
    (label, net, _, steps), run = cases[0], runs[0]
    assert label == "wide" and min(net.sizes[1:]) >= 200 and steps >= 100
    spikes = [int(run.neuron_spikes[name].sum()) for name in net.names]
    assert all(n > 0 for n in spikes), f"seed {SEED}: a silent layer in the wide network: {spikes}"


def test_missing_interpreter_is_a_clear_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGYMETER_LAVA_PYTHON", str(tmp_path / "no-python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(LavaUnavailable, match="no Python 3.10 with lava-nc found"):
        find_lava_python()


def test_the_lava_runner_runs_by_path_where_energymeter_cannot_be_imported(tmp_path):
    # lava's Python 3.10 has no energymeter: the runner found beside lava_check must run there as a script.
    # -S drops site-packages (energymeter's editable install with it); the stdlib is all it may need.
    def run(*args, spec=None):
        return subprocess.run([sys.executable, "-S", *args], input=json.dumps(spec), capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    assert run("-c", "import energymeter").returncode != 0  # else this test would prove nothing
    empty = run(str(RUNNER), spec={"schema_version": 2, "networks": []})
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == {"schema_version": 2, "results": []}
    wrong = run(str(RUNNER), spec={"schema_version": 1, "networks": []})
    assert wrong.returncode == 1 and "expected schema_version 2, got 1" in wrong.stderr
