import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from energymeter import ProfileError, measure  # noqa: E402
from energymeter.loihi import (ConversionError, LavaLif, convert, estimate_energy, load_loihi_profile,  # noqa: E402
                               simulate)
from energymeter.models import build, load_dataset, train  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    out = {}
    for name in ("mlp", "cnn", "kwta-mlp"):
        model = build(name, digits.in_shape, 10, seed=0)
        result = train(model, digits, lam=0.0, epochs=8 if name != "cnn" else 12, seed=0)
        out[name] = (model, result)
    return out


@pytest.mark.parametrize("name", ["mlp", "cnn", "kwta-mlp"])
def test_converted_network_keeps_the_source_accuracy_within_three_points(digits, trained, name):
    model, result = trained[name]
    snn = convert(model, digits.x_train[:500])
    sim = simulate(snn, digits.x_test, 100)
    assert sim.accuracy(digits.y_test) > result.test_accuracy - 0.03


def neurobench_style_synops(snn, inputs, timesteps):
    """Brute force, as NeuroBench does it: binary copy of each layer applied to binary inputs, summed."""
    eff = dense = 0
    captured = []
    for layer in snn.layers:
        layer.op.register_forward_pre_hook(lambda m, a, store=captured, lay=layer: store.append((lay, a[0].clone())))
    simulate(snn, inputs, timesteps)
    for layer, x in captured:
        if layer.kind == "avgpool":
            continue
        w = (layer.op.weight != 0).float()
        xb = (x != 0).float()
        if layer.kind == "linear":
            eff += int((xb @ w.t()).sum())
            dense += int((torch.ones_like(xb) @ torch.ones_like(w).t()).sum())
        else:
            conv = lambda inp, k: nn.functional.conv2d(inp, k, stride=layer.op.stride, padding=layer.op.padding)  # noqa: E731
            eff += int(conv(xb, w).sum())
            dense += int(conv(torch.ones_like(xb), torch.ones_like(w)).sum())
    return eff, dense


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_synaptic_operations_equal_a_brute_force_binary_layer_count(digits, trained, name):
    model, _ = trained[name]
    snn = convert(model, digits.x_train[:200])
    sim = simulate(snn, digits.x_test[:20], 10)
    snn2 = convert(model, digits.x_train[:200])
    eff, dense = neurobench_style_synops(snn2, digits.x_test[:20], 10)
    assert sim.synops_effective == eff
    assert sim.synops_dense == dense


def test_activation_sparsity_is_zeros_over_all_hidden_spiking_outputs(digits, trained):
    model, _ = trained["mlp"]
    snn = convert(model, digits.x_train[:200])
    sim = simulate(snn, digits.x_test[:30], 20)
    hidden = [layer for layer in snn.layers if layer.spiking]
    total = sum(int(torch.tensor(layer.out_shape).prod()) for layer in hidden) * 30 * 20
    spikes = sum(sim.spikes_per_layer[layer.name] for layer in hidden)
    assert sim.activation_sparsity == pytest.approx(1 - spikes / total)


def test_unsupported_layers_are_named():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(ConversionError, match=r"2 \(Sigmoid\)"):
        convert(net, torch.rand(3, 4))
    with pytest.raises(ConversionError, match="nn.Sequential"):
        convert(nn.Linear(4, 2), torch.rand(3, 4))


def test_single_if_neuron_fires_at_the_rate_of_its_input():
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
        net[2].bias.zero_()
    snn = convert(net, torch.tensor([[1.0]]), percentile=100)
    sim = simulate(snn, torch.tensor([[0.25]]), 40)
    assert sim.spikes_per_layer == {"input": 10, "0": 10}
    assert float(sim.output_potential[0, 0]) == pytest.approx(10.0)


def one_neuron(weight):
    """A converted 1-1-1 network whose hidden neuron gets ``weight`` per input spike and no bias."""
    snn = convert(nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)), torch.tensor([[1.0]]), percentile=100)
    with torch.no_grad():
        snn.layers[0].op.weight.fill_(weight)
        snn.layers[0].op.bias.fill_(0.0)
    return snn


def test_reset_to_zero_loses_the_residue_that_subtraction_keeps():
    snn = one_neuron(0.6)
    # Input fires every step; v gains 0.6 per step. Subtraction keeps the 0.2 residue: 6 spikes in 10
    # steps; reset to zero throws it away: a spike every second step, 5 in 10.
    assert simulate(snn, torch.tensor([[1.0]]), 10).spikes_per_layer["0"] == 6
    snn.reset = "zero"
    assert simulate(snn, torch.tensor([[1.0]]), 10).spikes_per_layer["0"] == 5


def test_lava_mode_follows_lif_dynamics_and_the_one_step_dense_delay():
    snn = one_neuron(0.6)
    snn.reset = "zero"
    spikes_in = torch.ones(1, 8, 1)
    sim = simulate(snn, spikes_in, 8, dynamics="lava", lif=LavaLif(du=1.0, dv=0.0, vth=1.0))
    # Step 0: nothing arrives (Dense delay). Then v: .6, 1.2>1 spike->0, .6, 1.2 spike, ... : spikes at steps 2, 4, 6.
    assert sim.spikes_per_timestep["0"] == [0, 0, 1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="spike inputs of shape"):
        simulate(snn, torch.ones(1, 1), 8, dynamics="lava")


def test_energy_is_the_operation_counts_times_the_profile(digits, trained):
    model, _ = trained["mlp"]
    sim = simulate(convert(model, digits.x_train[:100]), digits.x_test[:10], 10)
    energy = estimate_energy(sim, "loihi1")
    expected = (sim.synops_effective * 23.6 + sim.neuron_updates_active * 81 + sim.neuron_updates_inactive * 52
                + sim.total_spikes * 1.7) * 1e-12
    assert energy.total_energy_j == pytest.approx(expected)
    assert energy.provenance == "modeled" and "Davies" in energy.source
    calibrated = estimate_energy(sim, "loihi1-calibrated")
    assert calibrated.energy_j["synaptic"] == pytest.approx(sim.synops_effective * 35.5e-12)
    assert calibrated.energy_j["spike"] == pytest.approx(sim.packets * 111.0e-12)
    assert sim.total_spikes <= sim.packets  # every spike reaches at least one core of the next layer


def test_simulations_inside_a_window_are_reported_as_loihi_sim(digits, trained):
    model, _ = trained["mlp"]
    snn = convert(model, digits.x_train[:100])
    with measure(["loihi"]) as m:
        sim = simulate(snn, digits.x_test[:10], 10)
    assert m.result.provenance == {"loihi:sim": "modeled"}
    assert m.result.energy_j["loihi:sim"] == pytest.approx(estimate_energy(sim).total_energy_j)
    assert m.result.total_energy_j == 0.0  # simulated hardware never enters the total


def test_bundled_profiles_carry_the_published_figures():
    p = load_loihi_profile("loihi1")
    assert p.energy_pj["synaptic_op"] == 23.6 and p.energy_pj["tile_hop_north_south"] == 4.0
    c = load_loihi_profile("loihi1-calibrated")
    assert c.energy_pj["spike_out"] == 69.3 and "SANA-FE" in c.source


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("source"), "needs a 'source'"),
    (lambda d: d["energy_pj"].pop("synaptic_op"), "missing synaptic_op"),
    (lambda d: d["energy_pj"].update(synaptic_op=-1), "non-negative"),
    (lambda d: d["energy_pj"].update(teleport=1), "unknown cost"),
    (lambda d: d.update(kind="cpu"), "expected 'loihi'"),
])
def test_malformed_profiles_are_clear_errors(tmp_path, mutate, needle):
    data = {"schema_version": 1, "kind": "loihi", "name": "x", "source": "somewhere",
            "energy_pj": {"synaptic_op": 1, "neuron_update_active": 1, "neuron_update_inactive": 1}}
    mutate(data)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=needle):
        load_loihi_profile(path)
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_loihi_profile(path)


def test_synaptic_operation_counts_are_exact_integers_beyond_float32_precision():
    from energymeter.loihi.counting import _count_synops, _Totals

    gen = torch.Generator().manual_seed(0)
    spikes = (torch.rand(512, 3072, generator=gen) < 0.9).to(torch.float32)
    fanout = torch.randint(0, 200, (3072,), generator=gen).to(torch.float32)
    totals = _Totals([], 1)
    _count_synops("linear", fanout, spikes, totals)
    exact = int((spikes.to(torch.int64) * fanout.to(torch.int64)).sum())
    assert exact > 2**24 and totals.synops == exact


def test_a_simulation_that_cannot_be_priced_fails_the_domain_not_the_callers_simulate(digits, trained, monkeypatch):
    import energymeter.loihi.energy as pricing

    model, _ = trained["mlp"]
    snn = convert(model, digits.x_train[:100])

    def broken(sim, profile):
        raise ValueError("profile lacks a cost")

    real = pricing.estimate_energy
    monkeypatch.setattr(pricing, "estimate_energy", broken)
    m = measure(["loihi"])
    with m:
        sim = simulate(snn, digits.x_test[:5], 5)  # returns normally: its work is done
    assert sim.samples == 5
    assert "loihi:sim" not in m.result.energy_j and "failed inside the window" in m.result.failed["loihi:sim"]
    (session,) = m.meter._energy
    assert "profile lacks a cost" in session.last_failure
    monkeypatch.setattr(pricing, "estimate_energy", real)
    with m:  # a later window measures again
        simulate(snn, digits.x_test[:5], 5)
    assert m.result.energy_j["loihi:sim"] > 0 and not m.result.failed


def test_simulation_observers_are_called_until_unsubscribed_and_refused_twice():
    from energymeter.loihi import LavaLayer, LavaNetwork, simulation

    net = LavaNetwork([LavaLayer(du=0.0, dv=0.0, vth=1.0, bias=torch.full((3,), 0.3, dtype=torch.float64))])
    seen = []
    simulation.subscribe(seen.append)
    try:
        with pytest.raises(ValueError, match="already subscribed"):
            simulation.subscribe(seen.append)  # a second entry would count every simulation twice
        first = simulate(net, None, 8)
    finally:
        simulation.unsubscribe(seen.append)
    simulate(net, None, 8)
    assert seen == [first] and first.total_spikes == 6  # 3 neurons at 0.3 per step pass 1.0 at steps 4 and 8
    simulation.unsubscribe(seen.append)  # not subscribed: nothing to do


def test_public_names_are_the_functions_and_their_modules_are_named_apart():
    import energymeter.loihi as loihi
    from energymeter.loihi import conversion, simulation

    assert loihi.simulate is simulation.simulate and callable(loihi.simulate)
    assert loihi.convert is conversion.convert and loihi.conversion is conversion
    assert not hasattr(loihi.simulate, "subscribe")  # the observer registry lives in the module


def test_the_profile_and_pricing_load_without_torch():
    code = ("import sys\nfrom energymeter.loihi import estimate_energy, load_loihi_profile\n"
            "load_loihi_profile('loihi1')\nprint('torch' in sys.modules)\n"
            "from energymeter.loihi import simulate\nprint('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
