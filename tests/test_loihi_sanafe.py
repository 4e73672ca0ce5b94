"""``loihi1-calibrated`` priced as SANA-FE prices it, on networks small enough to count by hand.

SANA-FE (github.com/SLAM-Lab/SANA-FE, arch/loihi.yaml and src/pipeline.hpp, src/chip.cpp at commit 8951ab07):
every neuron-timestep pays the access (51.2 pJ), an updated or firing one the update too (72.8 pJ in all), a
firing one the spike-out on top (69.3 pJ), and each spike one axon-out message (111.0 pJ) per destination core.
"""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from energymeter.loihi import convert, estimate_energy, load_loihi_profile, simulate  # noqa: E402
from energymeter.loihi.cores import destination_cores  # noqa: E402
from energymeter.loihi.simulation import SimResult  # noqa: E402


def tiny_network() -> nn.Sequential:
    """2 pixels -> 4 hidden (the last never driven) -> 2 outputs; every hidden activation is 1 (scale 1)."""
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]))
        model[2].bias.zero_()
    return model


@pytest.mark.parametrize("neurons_per_core, packets", [
    # 2 per core: hidden {0, 1} | {2, 3}. Each pixel reaches both hidden cores (2 packets per input spike);
    # each hidden spike reaches the one output core. 4 steps x (2 input x 2 + 3 hidden x 1) = 28.
    (2, 28),
    # 1 per core: a pixel still reaches 2 cores; hidden 1 now reaches 2 (both outputs): 4 x (4 + 4) = 32.
    (1, 32),
])
def test_a_tiny_network_costs_what_sanafe_accounting_gives_by_hand(neurons_per_core, packets):
    snn = convert(tiny_network(), torch.ones(1, 2), neurons_per_core=neurons_per_core)
    sim = simulate(snn, torch.ones(1, 2), 4)
    # Every step: both pixels spike; hidden 0-2 receive 1 and spike; hidden 3 receives nothing; both outputs get 2.
    assert sim.spikes_per_layer == {"input": 8, "0": 12}
    assert sim.synops_effective == 4 * (2 + 2) + 4 * (1 + 2 + 1)  # input fan-out 2, 2; hidden fan-out 1, 2, 1, 0
    assert (sim.neuron_updates_active, sim.neuron_updates_inactive, sim.neuron_updates_spiking) == (20, 4, 12)
    assert sim.packets == packets
    energy = estimate_energy(sim, "loihi1-calibrated")
    synaptic_pj = 32 * 35.5
    neuron_pj = 20 * 72.8 + 4 * 51.2 + 12 * 69.3  # a firing neuron: the active update plus the spike-out
    axon_pj = packets * 111.0  # per packet per destination core, not per spike
    assert energy.energy_j["synaptic"] == pytest.approx(synaptic_pj * 1e-12)
    assert energy.energy_j["neuron"] == pytest.approx(neuron_pj * 1e-12)
    assert energy.energy_j["spike"] == pytest.approx(axon_pj * 1e-12)
    assert energy.total_energy_j == pytest.approx((synaptic_pj + neuron_pj + axon_pj) * 1e-12)


def test_a_neuron_that_fires_without_input_still_pays_the_update_and_the_spike_out():
    # 1 sample, 1 step: 3 hidden neurons fired, 2 of them with input; 1 more had input and did not fire.
    sim = SimResult(torch.zeros(1), 1, 1, {"input": 0, "0": 3}, {"input": [0], "0": [3]}, 0, 0, 0,
                    3, 5, 2, 0.0, torch.zeros(1, 2), None, 0)
    energy = estimate_energy(sim, "loihi1-calibrated")
    # The one that fired with no input is updated as SANA-FE's "fired" status has it: 4 x 72.8 + 4 x 51.2.
    assert energy.energy_j["neuron"] == pytest.approx((4 * 72.8 + 4 * 51.2 + 3 * 69.3) * 1e-12)


def brute_force_cores(op, in_shape, neurons_per_core):
    """Per input element: one-hot through the binary kernel, the distinct cores of the outputs it reaches."""
    binary = nn.Conv2d(op.in_channels, op.out_channels, op.kernel_size, op.stride, op.padding, bias=False)
    with torch.no_grad():
        binary.weight.copy_((op.weight != 0).float())
    n_in = int(torch.tensor(in_shape).prod())
    out = []
    for i in range(n_in):
        one_hot = torch.zeros(n_in)
        one_hot[i] = 1.0
        reached = binary(one_hot.view(1, *in_shape)).flatten().nonzero().flatten()
        out.append(len(set((reached // neurons_per_core).tolist())))
    return torch.tensor(out, dtype=torch.float32).view(in_shape)


@pytest.mark.parametrize("neurons_per_core", [1, 7, 20, 1024])
def test_conv_destination_cores_match_a_one_hot_brute_force(neurons_per_core):
    torch.manual_seed(0)
    op = nn.Conv2d(2, 3, 3, stride=1, padding=1)
    with torch.no_grad():
        op.weight[op.weight.abs() < 0.1] = 0.0  # some zero synapses, which send nothing
    out_shape = tuple(op(torch.zeros(1, 2, 5, 5)).shape[1:])
    got = destination_cores("conv", op, (2, 5, 5), out_shape, neurons_per_core)
    assert torch.equal(got, brute_force_cores(op, (2, 5, 5), neurons_per_core))


def test_the_calibrated_profile_cites_sanafe_commit_and_file():
    profile = load_loihi_profile("loihi1-calibrated")
    assert "arch/loihi.yaml" in profile.source and "8951ab0711676a773261284d2e8c9d995156cb3d" in profile.source
    assert profile.energy_pj["spike_out"] == 69.3 and profile.energy_pj["axon_out_per_packet"] == 111.0


def test_neurons_per_core_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="neurons_per_core"):
        convert(tiny_network(), torch.ones(1, 2), neurons_per_core=0)
