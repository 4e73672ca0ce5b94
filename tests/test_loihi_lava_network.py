"""The public lava-style network builder and lava mode's dtype, recording and refusals (no lava-nc needed)."""

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
from torch import nn  # noqa: E402

from energymeter.crosscheck.lava_check import random_network, random_spikes  # noqa: E402
from energymeter.crosscheck.lava_reference import run_reference  # noqa: E402
from energymeter.loihi import (LavaLayer, LavaLif, LavaNetwork, SpikingLayer, SpikingNetwork, convert,  # noqa: E402
                               simulate)


def test_bias_driven_neuron_fires_when_its_potential_first_exceeds_the_threshold():
    # v_t = 0.3 t with dv = 0: 0.3, 0.6, 0.9, 1.2 > 1 -> spike at step 3, reset, spike again at step 7.
    net = LavaNetwork([LavaLayer(du=0.0, dv=0.0, vth=1.0, bias=torch.tensor([0.3], dtype=torch.float64))])
    sim = simulate(net, None, 8, record="neurons")
    assert sim.neuron_spikes["0"][0, :, 0].tolist() == [False, False, False, True, False, False, False, True]
    assert sim.spikes_per_layer == {"input": 0, "0": 2}


def test_each_layer_keeps_its_own_lif_parameters():
    bias = torch.tensor([0.6], dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    # Layer 0 spikes every second step from step 1; each spike reaches layer 1 one step later (Dense delay).
    # Layer 1 (vth 0.5, no decay of v, du = 1) fires on every arrival; with vth 1.5 it would need two.
    source = LavaLayer(du=0, dv=0, vth=1.0, bias=bias)
    low = simulate(LavaNetwork([source, LavaLayer(du=1, dv=0, vth=0.5, weights=one)]), None, 8)
    high = simulate(LavaNetwork([source, LavaLayer(du=1, dv=0, vth=1.5, weights=one)]), None, 8)
    assert low.spikes_per_timestep["0"] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert low.spikes_per_timestep["1"] == [0, 0, 1, 0, 1, 0, 1, 0]
    assert high.spikes_per_timestep["1"] == [0, 0, 0, 0, 1, 0, 0, 0]


def test_float64_parameters_are_not_rounded():
    # 1 + 1e-12 rounds to 1.0 in float32: the neuron would never exceed vth = 1.0 there.
    net = LavaNetwork([LavaLayer(du=0, dv=1, vth=1.0, bias=torch.tensor([1.0 + 1e-12], dtype=torch.float64))])
    assert net.layers[0].bias.dtype == torch.float64
    assert simulate(net, None, 5).spikes_per_layer["0"] == 5
    assert simulate(net, None, 5).output_potential.dtype == torch.float64


def test_integer_and_list_parameters_become_exact_float64():
    layer = LavaLayer(du=1, dv=0, vth=2, weights=torch.tensor([[1, -2, 3]]), bias=[0.5])
    assert layer.weights.dtype == torch.float64 and layer.weights.tolist() == [[1.0, -2.0, 3.0]]
    assert layer.bias.dtype == torch.float64 and layer.vth == 2.0


def test_lava_mode_computes_in_float64_even_for_float32_parameters():
    # bias = 0.1f, no decay: after 10 steps v is 1.0000000149 in float64 but 1.0000001192 in float32 arithmetic,
    # either side of vth = 1.00000005. lava (float64) first spikes at step 10 (0-based), float32 at step 9.
    net = LavaNetwork([LavaLayer(du=0, dv=0, vth=1.00000005, bias=torch.tensor([0.1], dtype=torch.float32))])
    assert net.layers[0].bias.dtype == torch.float32  # kept as given; exact in float64
    sim = simulate(net, None, 12, record="neurons")
    assert sim.neuron_spikes["0"][0, :, 0].nonzero().flatten().tolist() == [10]
    assert run_reference(net, None, 12, np.float64).spikes[0][:, 0].nonzero()[0].tolist() == [10]
    assert run_reference(net, None, 12, np.float32).spikes[0][:, 0].nonzero()[0].tolist() == [9]


def test_record_neurons_gives_per_sample_trains_that_sum_to_the_counts():
    net = random_network(3, input_size=12)
    spikes = random_spikes(4, 30, 12, 0.3, seed=3)
    counts = simulate(net, spikes, 30)
    traced = simulate(net, spikes, 30, record="neurons")
    assert counts.neuron_spikes is None
    for name in ("input",) + net.names:
        train = traced.neuron_spikes[name]
        assert train.dtype == torch.bool and train.shape[:2] == (4, 30)
        assert train.sum(dim=(0, 2)).tolist() == counts.spikes_per_timestep[name]
    assert torch.equal(traced.neuron_spikes["input"], spikes.bool())


def test_batched_samples_equal_samples_run_alone():
    net = random_network(5, input_size=20)
    spikes = random_spikes(6, 40, 20, 0.25, seed=5)
    together = simulate(net, spikes, 40, record="neurons", batch_size=4)
    for s in range(6):
        alone = simulate(net, spikes[s:s + 1], 40, record="neurons")
        for name in net.names:
            assert torch.equal(alone.neuron_spikes[name][0], together.neuron_spikes[name][s])


def test_spiking_network_in_lava_mode_equals_the_lava_network_with_one_lif():
    lif = LavaLif(du=0.3, dv=0.05, vth=1.0)
    drawn = random_network(11, widths=[30, 20, 10], input_size=15)
    net = LavaNetwork([LavaLayer(du=lif.du, dv=lif.dv, vth=lif.vth, weights=layer.weights, bias=layer.bias)
                       for layer in drawn.layers])
    layers = []
    for i, layer in enumerate(net.layers):
        op = nn.Linear(*reversed(layer.weights.shape)).double()
        with torch.no_grad():
            op.weight.copy_(layer.weights)
            op.bias.copy_(layer.bias)
        spiking = SpikingLayer(str(i), "linear", op, False, True, in_shape=(op.in_features,),
                               out_shape=(op.out_features,))
        spiking.fanout = (layer.weights != 0).sum(0).double()
        layers.append(spiking)
    snn = SpikingNetwork(layers, (15,), reset="zero")
    spikes = random_spikes(3, 50, 15, 0.3, seed=11)
    a = simulate(snn, spikes, 50, dynamics="lava", lif=lif, record="neurons")
    b = simulate(net, spikes, 50, record="neurons")
    assert all(torch.equal(a.neuron_spikes[n], b.neuron_spikes[n]) for n in net.names)
    assert sum(a.spikes_per_layer.values()) > 0


def test_a_float64_converted_network_runs_in_if_mode_in_float64():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    snn = convert(model, torch.rand(20, 4))
    for layer in snn.layers:
        layer.op.double()
    sim = simulate(snn, torch.rand(5, 4), 10)
    assert sim.output_potential.dtype == torch.float64 and sim.samples == 5


@pytest.mark.parametrize("change, needle", [
    (lambda snn: setattr(snn, "reset", "subtract"), "reset='subtract'"),
    (lambda snn: setattr(snn, "threshold", 0.5), "network.threshold=0.5 would be ignored"),
])
def test_lava_mode_refuses_a_spiking_network_setting_it_would_ignore(change, needle):
    snn = convert(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)), torch.rand(5, 2))
    snn.reset = "zero"
    assert simulate(snn, torch.ones(1, 4, 2), 4, dynamics="lava").timesteps == 4
    change(snn)
    with pytest.raises(ValueError, match=needle):
        simulate(snn, torch.ones(1, 4, 2), 4, dynamics="lava")


def test_lava_network_refuses_what_it_would_ignore_or_cannot_run():
    net = LavaNetwork([LavaLayer(du=0, dv=0, vth=1, bias=torch.ones(2))])
    with pytest.raises(ValueError, match="lif= would be ignored"):
        simulate(net, None, 3, lif=LavaLif())
    with pytest.raises(ValueError, match="only with dynamics='lava'"):
        simulate(net, None, 3, dynamics="if")
    with pytest.raises(ValueError, match="record must be"):
        simulate(net, None, 3, record="potentials")
    fed = LavaNetwork([LavaLayer(du=0, dv=0, vth=1, weights=torch.ones(2, 3))])
    with pytest.raises(ValueError, match=r"pass inputs of shape \(N, 3, 3\)"):
        simulate(fed, None, 3)
    with pytest.raises(ValueError, match="takes 3 input spikes per timestep"):
        simulate(fed, torch.ones(1, 3, 4), 3)


@pytest.mark.parametrize("build, needle", [
    (lambda: LavaNetwork([]), "at least one layer"),
    (lambda: LavaLayer(du=0, dv=0, vth=1), "needs a bias per neuron"),
    (lambda: LavaLayer(du=0, dv=0, vth=1, weights=torch.ones(3)), r"\(neurons, inputs\)"),
    (lambda: LavaLayer(du=0, dv=0, vth=1, weights=torch.ones(2, 3), bias=torch.ones(3)),
     r"bias must have shape \(2,\)"),
    (lambda: LavaLayer(du=0, dv=0, vth=float("nan"), bias=torch.ones(2)), "vth must be finite"),
    (lambda: LavaNetwork([LavaLayer(du=0, dv=0, vth=1, bias=torch.ones(2)),
                          LavaLayer(du=0, dv=0, vth=1, bias=torch.ones(2))]),
     "only the first layer may be bias-driven"),
    (lambda: LavaNetwork([LavaLayer(du=0, dv=0, vth=1, bias=torch.ones(2)),
                          LavaLayer(du=0, dv=0, vth=1, weights=torch.ones(4, 3))]),
     "take 3 inputs but layer 0 has 2"),
])
def test_malformed_lava_networks_are_one_clear_error(build, needle):
    with pytest.raises(ValueError, match=needle):
        build()


def test_record_neurons_in_if_mode_matches_the_counts_of_a_converted_network():
    snn = convert(nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 3)), torch.rand(40, 6))
    inputs = torch.rand(5, 6)
    counts = simulate(snn, inputs, 20)
    traced = simulate(snn, inputs, 20, record="neurons")
    assert set(traced.neuron_spikes) == {"input", "0"}
    assert traced.neuron_spikes["0"].shape == (5, 20, 9)
    for name, train in traced.neuron_spikes.items():
        assert train.sum(dim=(0, 2)).tolist() == counts.spikes_per_timestep[name]
    assert int(traced.neuron_spikes["input"].sum()) == counts.spikes_per_layer["input"] > 0


def test_exact_lava_mode_is_bit_identical_to_lavas_arithmetic_on_random_networks():
    # lava's Dense sums the active columns with numpy; exact=True sums them the same way, so the final
    # potentials must be the same float64 numbers as an independent numpy re-implementation of lava's
    # arithmetic (which the cross-check compares with lava-nc itself), not merely close.
    import random

    import numpy as np

    from energymeter.crosscheck.lava_check import random_network, random_spikes
    from energymeter.crosscheck.lava_reference import reference_spikes

    rng = random.Random()
    seed = rng.randrange(2**31)
    for case in range(12):
        net_seed, steps = seed + case, rng.randint(20, 80)
        inputs = rng.choice([0, rng.randint(3, 60)])
        net = random_network(net_seed, input_size=inputs)
        spikes = random_spikes(2, steps, inputs, 0.3, seed=net_seed) if inputs else None
        exact = simulate(net, spikes, steps, record="neurons", exact=True)
        refs = reference_spikes(net, spikes, steps, np.float64)
        for sample, ref in enumerate(refs):
            last = ref.potentials[-1][steps - 1].copy()
            last[ref.spikes[-1][steps - 1]] = 0.0  # lava resets a neuron that fired
            where = f"seed {net_seed}, network {net.sizes}, sample {sample}"
            assert np.array_equal(exact.output_potential[sample].numpy(), last), f"{where}: potentials differ"
            for index, name in enumerate(net.names):
                assert np.array_equal(exact.neuron_spikes[name][sample].numpy(), ref.spikes[index]), where


def test_exact_is_refused_where_it_would_mean_nothing():
    from torch import nn

    from energymeter.loihi import convert

    snn = convert(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), torch.rand(4, 2), reset="zero")
    with pytest.raises(ValueError, match="exact=True is for a LavaNetwork"):
        simulate(snn, torch.ones(1, 3, 2), 3, dynamics="lava", exact=True)
    with pytest.raises(ValueError, match="exact= applies to dynamics='lava' only"):
        simulate(snn, torch.rand(1, 2), 3, exact=True)
