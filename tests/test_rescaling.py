"""E's rescaling symmetry: predictions unchanged, l2 E 1000x lower, the scale-free E unmoved."""

import math

import pytest
import torch
from torch import nn

from energymeter.models import KWinnersTakeAll, activation_energies, activation_layers, build, rescale

A_1000 = 1000 ** -0.5  # l2 E scales by a^2 = 1/1000, l1 by a = 1/31.6


def _trained_like(name, in_shape, seed=0):
    """A subject model with weights moved off their initialisation (biases non-zero, layers of unequal scale)."""
    model = build(name, in_shape, 10, seed=seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


CASES = [("mlp", (1, 8, 8)), ("cnn", (1, 8, 8)), ("kwta-mlp", (1, 8, 8))]


@pytest.mark.parametrize("name,in_shape", CASES)
def test_rescaling_leaves_every_prediction_unchanged(name, in_shape):
    model = _trained_like(name, in_shape)
    x = torch.rand(200, *in_shape)
    scaled = rescale(model, A_1000)
    with torch.no_grad():
        before, after = model(x), scaled(x)
    assert torch.equal(before.argmax(1), after.argmax(1))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert not torch.equal(model[1 if name != "cnn" else 0].weight, scaled[1 if name != "cnn" else 0].weight)


@pytest.mark.parametrize("name,in_shape", CASES)
def test_scale_free_energy_does_not_move_while_l2_moves_1000x(name, in_shape):
    model = _trained_like(name, in_shape)
    x = torch.rand(300, *in_shape)
    before = activation_energies(model, x, batch_size=128)
    after = activation_energies(rescale(model, A_1000), x, batch_size=128)
    assert before["l2"] / after["l2"] == pytest.approx(1000.0, rel=1e-4)
    assert before["l1"] / after["l1"] == pytest.approx(math.sqrt(1000.0), rel=1e-4)  # 31.6x
    assert before["l0"] / after["l0"] == pytest.approx(1.000, abs=1e-3)
    for kind in ("l2-scale-free", "l1-scale-free"):
        assert after[kind] == pytest.approx(before[kind], rel=1e-4)
        assert before[kind] > 0


def test_per_layer_factors_move_each_layer_and_leave_the_scale_free_energy():
    model = _trained_like("mlp", (1, 8, 8))
    x = torch.rand(300, 1, 8, 8)
    scaled = rescale(model, [10.0, 0.01])  # layer 1 up 10x, layer 2 down 100x
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), model(x), rtol=1e-4, atol=1e-5)
    before, after = activation_energies(model, x), activation_energies(scaled, x)
    assert after["l2"] != pytest.approx(before["l2"], rel=0.01)
    assert after["l2-scale-free"] == pytest.approx(before["l2-scale-free"], rel=1e-4)


def test_activation_energies_agree_with_the_training_definition():
    from energymeter.models import evaluate

    model = _trained_like("cnn", (1, 8, 8))
    x, y = torch.rand(100, 1, 8, 8), torch.randint(0, 10, (100,))
    got = activation_energies(model, x, batch_size=32)
    for kind in ("l2", "l1", "l0"):
        assert got[kind] == pytest.approx(evaluate(model, x, y, activation_energy=kind).activation_energy, rel=1e-5)


def test_rescale_names_its_layers_and_leaves_the_original_untouched():
    model = _trained_like("kwta-mlp", (1, 8, 8))
    weight = model[1].weight.clone()
    rescale(model, 0.5)
    assert torch.equal(model[1].weight, weight)
    assert activation_layers(model) == ["2", "4"]


@pytest.mark.parametrize("factor,match", [(0.0, "positive"), (-1.0, "positive"), (float("inf"), "positive"),
                                          ([1.0], "2 activation layers")])
def test_rescale_refuses_bad_factors(factor, match):
    with pytest.raises(ValueError, match=match):
        rescale(build("mlp", (1, 8, 8), 10, seed=0), factor)


def test_rescale_refuses_an_activation_that_is_not_homogeneous():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not positively homogeneous"):
        rescale(model, 2.0)


def test_kwta_keeps_the_same_winners_under_a_per_layer_factor():
    kwta = KWinnersTakeAll(0.25)
    z = torch.randn(50, 40)
    assert torch.equal(kwta(z * 7.5) != 0, kwta(z) != 0)
