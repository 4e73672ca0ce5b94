import pytest

torch = pytest.importorskip("torch")

from energymeter import Meter, measure  # noqa: E402
from energymeter.backends.flops import fvcore_cross_check  # noqa: E402


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


# Forward of a 784-256-10 MLP at batch 128: 2 x 128 x (784 x 256 + 256 x 10) FLOPs.
FORWARD = 2 * 128 * (784 * 256 + 256 * 10)
# Backward: weight grads of both layers and the input grad of the second layer only.
BACKWARD = 2 * 128 * (784 * 256 + 256 * 10) + 2 * 128 * 256 * 10


def train_step(net, x, y):
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()


def test_counts_forward_and_backward_with_multiply_add_as_two():
    net, x, y = mlp(), torch.randn(128, 784), torch.randint(0, 10, (128,))
    with measure(["flops"]) as m:
        train_step(net, x, y)
    assert m.result.flops == FORWARD + BACKWARD


def test_operators_without_a_formula_are_listed_not_silently_zero():
    net, x = mlp(), torch.randn(128, 784)
    with measure(["flops"]) as m:
        net(x)
    assert m.result.flops == FORWARD
    assert m.result.uncounted_ops.get("aten.relu") == 1


def test_repeated_windows_on_the_same_module_and_shapes_reuse_the_count_without_counting():
    net, x, y = mlp(), torch.randn(128, 784), torch.randint(0, 10, (128,))
    meter = Meter(["flops"])
    session = meter._flops
    counted = []
    original = session._add
    session._add = lambda flops, op: (counted.append(flops), original(flops, op))
    results = []
    for i in range(3):
        meter.begin_window(f"s{i}", model=net)
        train_step(net, x, y)
        results.append(meter.end_window(f"s{i}"))
        if i == 0:
            calls_after_first = len(counted)
    assert [r.flops for r in results] == [FORWARD + BACKWARD] * 3
    assert len(counted) == calls_after_first  # windows 2 and 3 dispatched nothing through the counter


def test_cache_key_separates_shapes_grad_mode_and_backward():
    net = mlp()
    meter = Meter(["flops"])

    def window(name, fn):
        meter.begin_window(name, model=net)
        fn()
        return meter.end_window(name).flops

    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    assert window("train", lambda: train_step(net, x, y)) == FORWARD + BACKWARD
    assert window("fwd", lambda: net(x)) is None  # same first call, no backward: unseen pattern
    assert window("fwd2", lambda: net(x)) == FORWARD  # ...so it is counted next time
    with torch.no_grad():
        assert window("nograd", lambda: net(x)) == FORWARD
    small = torch.randn(16, 784)
    assert window("small", lambda: net(small)) == FORWARD // 8


def test_window_that_never_calls_the_named_model_has_no_flops_and_says_why():
    meter = Meter(["flops"])
    meter.begin_window("w", model=mlp())
    m = meter.end_window("w")
    assert m.flops is None and "not called" in m.warnings[0]


def test_fvcore_cross_check_reports_macs_and_names_the_convention():
    pytest.importorskip("fvcore")
    net, x = mlp(), torch.randn(128, 784)
    check = fvcore_cross_check(net, (x,))
    assert check["macs"] * 2 == FORWARD
    assert "MACs" in check["convention"]
