import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from energymeter.models import ActivationEnergy, KWinnersTakeAll, build  # noqa: E402


def tiny():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.Tanh())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
        net[2].bias.zero_()
    return net


X = torch.tensor([[1.0, 2.0], [-1.0, 0.0]])


def hand_layers():
    relu = torch.relu(torch.tensor([[1.0, 2.5, -1.0], [-1.0, 0.5, -1.0]]))  # [[1, 2.5, 0], [0, 0.5, 0]]
    tanh = torch.tanh(torch.stack([relu[:, 0] + relu[:, 1], relu[:, 2]], 1))
    return relu, tanh


def test_hooks_catch_every_activation_module():
    net = build("cnn", (1, 8, 8), 10)
    act = ActivationEnergy(net)
    assert act.layer_names == ["1", "4", "8", "10"]
    net(torch.zeros(2, 1, 8, 8))
    assert set(act.per_layer) == {"1", "4", "8", "10"}


def test_l2_energy_equals_a_hand_computation():
    relu, tanh = hand_layers()
    net = tiny()
    act = ActivationEnergy(net)
    net(X)
    per_sample = relu.pow(2).sum(1) + tanh.pow(2).sum(1)
    assert torch.allclose(act.per_sample, per_sample)
    assert act.value.item() == pytest.approx(per_sample.mean().item())
    assert act.per_layer["1"] == pytest.approx(relu.pow(2).sum(1).mean().item())


def test_l1_and_mean_reduction_equal_a_hand_computation():
    relu, tanh = hand_layers()
    net = tiny()
    act = ActivationEnergy(net, kind="l1", reduction="mean")
    net(X)
    expected = (relu.abs().sum(1) / 3 + tanh.abs().sum(1) / 2).mean()
    assert act.value.item() == pytest.approx(expected.item())


def test_l0_matches_a_direct_count_of_nonzero_activations():
    relu, tanh = hand_layers()
    net = tiny()
    act = ActivationEnergy(net, kind="l0")
    net(X)
    direct = ((relu != 0).sum(1) + (tanh != 0).sum(1)).float()
    assert torch.equal(act.per_sample, direct)
    assert not act.value.requires_grad


def test_custom_callable_replaces_the_definition():
    net = tiny()
    act = ActivationEnergy(net, kind=lambda a: a.flatten(1).max(1).values)
    net(X)
    relu, tanh = hand_layers()
    expected = relu.max(1).values + tanh.max(1).values
    assert torch.allclose(act.per_sample, expected)


def test_gradient_of_lambda_e_reaches_the_weights():
    net = tiny()
    act = ActivationEnergy(net)
    net(X)
    (1e-2 * act.value).backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0
    assert net[2].weight.grad.abs().sum() > 0


def test_each_forward_starts_a_new_batch():
    net = tiny()
    act = ActivationEnergy(net)
    net(X)
    first = act.value.item()
    net(X[:1])
    assert act.per_sample.shape == (1,)
    assert act.value.item() != first


def test_named_layers_are_hooked_and_unknown_names_rejected():
    net = nn.Sequential(nn.Linear(2, 2), nn.Identity())
    with pytest.raises(ValueError, match="no activation modules"):
        ActivationEnergy(net)
    act = ActivationEnergy(net, layers=["1"])
    assert act.layer_names == ["1"]
    with pytest.raises(ValueError, match="no module named"):
        ActivationEnergy(net, layers=["7"])
    with pytest.raises(ValueError, match="unknown energy kind"):
        ActivationEnergy(tiny(), kind="l3")


def test_removed_hooks_stop_computing():
    net = tiny()
    with ActivationEnergy(net) as act:
        net(X)
    first = act.value
    net(X[:1])
    assert act.value is first  # no hook ran for the second forward


def test_kwta_keeps_k_winners_per_sample():
    layer = KWinnersTakeAll(k_fraction=0.25)
    x = torch.tensor([[5.0, -1.0, 3.0, 0.5, 2.0, 4.0, 1.0, 0.0]])
    out = layer(x)
    assert torch.equal(out, torch.tensor([[5.0, 0, 0, 0, 0, 4.0, 0, 0]]))
    with pytest.raises(ValueError):
        KWinnersTakeAll(0.0)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="known models: mlp, cnn, kwta-mlp"):
        build("resnet", (1, 8, 8), 10)


def test_default_mlp_on_28x28_is_784_256_256_10():
    net = build("mlp", (1, 28, 28), 10)
    shapes = [tuple(m.weight.shape) for m in net if isinstance(m, nn.Linear)]
    assert shapes == [(256, 784), (256, 256), (10, 256)]


def test_build_with_a_seed_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build("mlp", (1, 8, 8), 10, seed=4)
    b = build("mlp", (1, 8, 8), 10, seed=4)
    assert torch.equal(a[1].weight, b[1].weight)
    assert torch.rand(1) == before


def test_l2_energy_is_bit_for_bit_the_per_layer_dot_products_of_the_training_path():
    # The E the training loss has always used: one dot product per activation layer, in call order,
    # times 1/B. Random inputs and a wide net, so a change of summation order would show in the bits.
    torch.manual_seed(7)
    net = build("mlp", (1, 28, 28), 10)
    x = torch.randn(128, 1, 28, 28)
    act = ActivationEnergy(net)
    net(x)
    value = act.value
    act.remove()
    h1 = net[2](net[1](net[0](x)))
    h2 = net[4](net[3](h1))
    expected = (torch.dot(h1.reshape(-1), h1.reshape(-1)) + torch.dot(h2.reshape(-1), h2.reshape(-1))) * (1.0 / 128)
    assert torch.equal(value, expected)
    mean = ActivationEnergy(net, kind="l1", reduction="mean")
    net(x)
    mean_value = mean.value
    mean.remove()
    expected_mean = h1.abs().sum() * (1.0 / (128 * 256)) + h2.abs().sum() * (1.0 / (128 * 256))
    assert torch.equal(mean_value, expected_mean)


def test_an_activation_changed_in_place_after_its_hook_is_refused_not_misread():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(p=0.5, inplace=True))
    act = ActivationEnergy(net)
    net.train()
    net(torch.ones(4, 2))
    with pytest.raises(RuntimeError, match="changed in place"):
        act.value
