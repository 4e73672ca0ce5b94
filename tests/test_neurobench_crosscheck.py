"""Synaptic operations and activation sparsity equal the neurobench package's metrics on the same network and data."""

import pytest

torch = pytest.importorskip("torch")
workload = pytest.importorskip("neurobench.metrics.workload", reason="neurobench not installed (make test installs it)")

from neurobench.hooks.layer import LayerHook  # noqa: E402
from neurobench.hooks.neuron import NeuronHook  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402
from torch import nn  # noqa: E402

from energymeter.loihi import convert, simulate  # noqa: E402
from energymeter.models import build, load_dataset, train  # noqa: E402


class IFNeurons(nn.Module):
    """Integrate-and-fire neurons with reset by subtraction, one timestep per call (state kept between calls)."""

    def __init__(self):
        super().__init__()
        self.v = None

    def forward(self, current):
        self.v = current.clone() if self.v is None else self.v + current
        spikes = (self.v >= 1.0).to(current.dtype)
        self.v = self.v - spikes
        return spikes


class Encoder(IFNeurons):
    """The input encoder: same dynamics, but not a hidden layer (NeuroBench must not count it)."""


class StepNet(nn.Module):
    """The converted network as a torch module that NeuroBench can hook: T calls of each layer per forward."""

    def __init__(self, snn, timesteps):
        super().__init__()
        self.snn, self.timesteps = snn, timesteps
        self.ops = nn.ModuleList(layer.op for layer in snn.layers)
        self.neurons = nn.ModuleList(IFNeurons() for layer in snn.layers if layer.spiking)
        self.encoder = Encoder()

    def forward(self, x):
        for module in (self.encoder, *self.neurons):
            module.v = None
        output = 0
        for _ in range(self.timesteps):
            spikes = self.encoder(x)
            for i, layer in enumerate(self.snn.layers):
                inp = spikes.flatten(1) if layer.flatten else spikes
                current = self.ops[i](inp)
                if layer.spiking:
                    spikes = self.neurons[i](current)
                else:
                    output = output + current
        return output


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_synops_and_sparsity_equal_neurobench(name):
    data = load_dataset("digits")
    model = build(name, data.in_shape, 10, seed=0)
    train(model, data, lam=1e-3, epochs=2, seed=0)
    snn = convert(model, data.x_train[:200])
    x, y = data.x_test[:16], data.y_test[:16]
    timesteps = 8
    ours = simulate(snn, x, timesteps)

    net = StepNet(snn, timesteps)
    bench_model = TorchModel(net)
    bench_model.add_activation_module(IFNeurons)
    bench_model.activation_hooks = [NeuronHook(layer["layer"], layer["layer_name"])
                                    for layer in bench_model.activation_layers()
                                    if not isinstance(layer["layer"], Encoder)]
    bench_model.connection_hooks = [LayerHook(layer) for layer in bench_model.connection_layers()]
    with torch.no_grad():
        preds = bench_model(x)
    assert torch.equal(preds.argmax(1), ours.predictions)
    synops = workload.SynapticOperations()(bench_model, preds, (x, y))
    sparsity = workload.ActivationSparsity()(bench_model, preds, (x, y))
    assert synops["Effective_ACs"] == pytest.approx(ours.synops_effective / len(x))
    assert synops["Effective_MACs"] == 0
    assert synops["Dense"] == pytest.approx(ours.synops_dense / len(x))
    assert sparsity == pytest.approx(ours.activation_sparsity)
