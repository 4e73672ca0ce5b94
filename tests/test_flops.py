import threading

import pytest

torch = pytest.importorskip("torch")

from energymeter import Meter, measure  # noqa: E402
from energymeter.crosscheck.fvcore_check import fvcore_cross_check  # noqa: E402


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
    results, passes = [], []
    for i in range(3):
        meter.begin_window(f"s{i}", model=net)
        train_step(net, x, y)
        results.append(meter.end_window(f"s{i}"))
        passes.append(meter._counter.shadow_passes)
    assert [r.flops for r in results] == [FORWARD + BACKWARD] * 3
    assert passes == [1, 1, 1]  # windows 2 and 3 ran no shadow pass: the count was reused


def test_cache_key_separates_shapes_grad_mode_and_backward():
    net = mlp()
    meter = Meter(["flops"])

    def window(name, fn):
        meter.begin_window(name, model=net)
        fn()
        return meter.end_window(name).flops

    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    assert window("train", lambda: train_step(net, x, y)) == FORWARD + BACKWARD
    assert window("fwd", lambda: net(x)) == FORWARD  # same call, no backward: counted apart
    assert window("fwd2", lambda: net(x)) == FORWARD
    with torch.no_grad():
        assert window("nograd", lambda: net(x)) == FORWARD
    small = torch.randn(16, 784)
    assert window("small", lambda: net(small)) == FORWARD // 8
    assert window("both", lambda: (net(x), net(small))) == FORWARD + FORWARD // 8
    assert meter._counter.shadow_passes == 4  # train, fwd, nograd, small: "fwd2" and "both" reused counts


def test_window_that_never_calls_the_named_model_has_no_flops_and_says_why():
    meter = Meter(["flops"])
    meter.begin_window("w", model=mlp())
    m = meter.end_window("w")
    assert m.flops is None and "not called" in m.warnings[0]


def test_the_shadow_pass_leaves_the_module_its_buffers_and_other_hooks_untouched():
    from energymeter.models import ActivationEnergy

    def net_with_batchnorm():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 10))

    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    measured, twin = net_with_batchnorm(), net_with_batchnorm()
    act = ActivationEnergy(measured)
    with measure(["flops"], model=measured) as m:
        train_step(measured, x, y)
    e_after = act.value
    train_step(twin, x, y)
    assert m.result.flops == 2 * 128 * (784 * 64 + 64 * 10) * 2 + 2 * 128 * 64 * 10
    assert torch.equal(measured[1].running_mean, twin[1].running_mean)
    assert int(measured[1].num_batches_tracked) == 1
    assert torch.equal(measured[0].weight.grad, twin[0].weight.grad)
    assert e_after.device.type == "cpu" and act.value is e_after  # E's hooks did not see the shadow pass


def test_a_module_that_cannot_run_on_meta_is_counted_on_its_device():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(16, 16, bias=False)

        def forward(self, x):
            steps = int(x.abs().sum().item() > -1) + 1  # .item() cannot run on meta
            for _ in range(steps):
                x = self.linear(x)
            return x

    with measure(["flops"], model=DataDependent()) as m:
        m.model(torch.randn(4, 16))
    assert m.result.flops == 2 * (2 * 4 * 16 * 16)


def test_inline_counts_of_concurrent_threads_do_not_leak_into_each_other():
    small = torch.nn.Linear(16, 16, bias=False)  # 2 x 16 x 16 = 512 FLOPs on one sample
    big = mlp()
    meter = Meter(["flops"])
    barrier = threading.Barrier(2)
    results = {}

    def run(name, fn, model=None):
        barrier.wait()
        meter.begin_window(name, model=model)
        barrier.wait()  # both windows open before either runs its work
        fn()
        barrier.wait()  # both ran their work before either closes
        results[name] = meter.end_window(name).flops

    threads = [threading.Thread(target=run, args=("small", lambda: small(torch.randn(1, 16)))),
               threading.Thread(target=run, args=("big", lambda: big(torch.randn(128, 784))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"small": 512, "big": FORWARD}


def test_model_windows_of_concurrent_threads_count_only_their_own_calls():
    small = torch.nn.Linear(16, 16, bias=False)
    big = mlp()
    meter = Meter(["flops"])
    barrier = threading.Barrier(2)
    results = {}

    def run(name, model, x):
        barrier.wait()
        meter.begin_window(name, model=model)
        barrier.wait()
        model(x)
        barrier.wait()
        results[name] = meter.end_window(name).flops

    threads = [threading.Thread(target=run, args=("small", small, torch.randn(1, 16))),
               threading.Thread(target=run, args=("big", big, torch.randn(128, 784)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"small": 512, "big": FORWARD}
    # ...and the cache holds the right count for the next window too.
    with measure(["flops"], model=small) as m:
        small(torch.randn(1, 16))
    assert m.result.flops == 512


def test_a_meter_with_energy_backends_does_not_count_a_window_without_model_and_says_how(powercap):
    powercap.add_package(0)
    meter = Meter(["rapl", "flops"], powercap_root=powercap.root)
    meter.begin_window("w")
    mlp()(torch.randn(8, 784))
    m = meter.end_window("w")
    assert m.flops is None and any("model=" in w for w in m.warnings)
    meter.close()


def test_per_step_measure_with_model_installs_its_recorder_once():
    net, x, y = mlp(), torch.randn(8, 784), torch.randint(0, 10, (8,))
    kept, recorders = [], set()
    for _ in range(50):
        with measure(["flops"], model=net) as m:
            train_step(net, x, y)
        kept.append(m)
        recorders.add(id(vars(net)["forward"]))
    assert m.result.flops == (FORWARD + BACKWARD) // 16
    assert len(recorders) == 1 and len(net._forward_pre_hooks) == 0
    assert all(len(p._post_accumulate_grad_hooks) == 1 for p in net.parameters())


def test_the_recording_forward_keeps_the_signature_and_goes_when_the_meter_closes():
    import inspect

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, input_ids, attention_mask=None):
            return self.fc(input_ids)

    net = Net()
    meter = Meter(["flops"])
    meter.begin_window("w", model=net)
    net(torch.randn(3, 4))
    assert meter.end_window("w").flops == 2 * 3 * 4 * 2
    assert list(inspect.signature(net.forward).parameters) == ["input_ids", "attention_mask"]
    meter.close()
    assert "forward" not in vars(net) and net._forward_pre_hooks == {}
    assert all(not p._post_accumulate_grad_hooks for p in net.parameters())


def test_a_copy_of_a_counted_module_runs_its_own_weights_and_is_not_counted_in_the_originals_window(tmp_path):
    import copy
    import pickle

    net, x = torch.nn.Linear(4, 2), torch.randn(3, 4)
    meter = Meter(["flops"])
    meter.begin_window("w", model=net)
    net(x)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.weight.add_(1.0)
    twin(x)
    twin(x)
    result = meter.end_window("w")
    assert result.flops == 2 * 3 * 4 * 2  # the original's one call, not the copy's two
    assert torch.allclose(twin(x), torch.nn.functional.linear(x, twin.weight, twin.bias))
    assert not torch.allclose(twin(x), net(x))
    torch.save(net, tmp_path / "net.pt")
    loaded = torch.load(tmp_path / "net.pt", weights_only=False)
    assert torch.allclose(loaded(x), net(x))
    assert pickle.loads(pickle.dumps(net))(x).shape == (3, 2)
    meter.close()


def test_a_module_with_its_own_instance_forward_is_recorded_by_a_pre_hook():
    net, x = torch.nn.Linear(4, 2), torch.randn(3, 4)
    patched = net.forward
    net.forward = lambda inp: patched(inp)  # another library's wrapper, set on the instance
    meter = Meter(["flops"])
    meter.begin_window("w", model=net)
    net(x)
    assert meter.end_window("w").flops == 2 * 3 * 4 * 2
    assert len(net._forward_pre_hooks) == 1 and vars(net)["forward"] is not patched
    meter.close()
    assert net._forward_pre_hooks == {} and "forward" in vars(net)


def test_fvcore_cross_check_reports_macs_and_names_the_convention():
    pytest.importorskip("fvcore")
    net, x = mlp(), torch.randn(128, 784)
    check = fvcore_cross_check(net, (x,))
    assert check["macs"] * 2 == FORWARD
    assert "MACs" in check["convention"]


def test_backward_is_counted_even_when_the_first_parameter_is_unused():
    torch.manual_seed(0)

    class Skips(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(4, 4)
            self.used = torch.nn.Linear(16, 8)

        def forward(self, x):
            return self.used(x)

    net, x = Skips(), torch.randn(32, 16)
    meter = Meter(["flops"])
    meter.begin_window("fwd", model=net)
    net(x)
    forward = meter.end_window("fwd").flops
    meter.begin_window("step", model=net)
    net(x).sum().backward()
    step = meter.end_window("step").flops
    assert forward == 2 * 32 * 16 * 8
    assert step > forward  # backward's FLOPs are in: the unused first layer did not hide them


def test_a_window_of_many_steps_pays_the_backward_marks_of_its_first_step_only_and_counts_every_step(monkeypatch):
    from energymeter.backends import flop_recording
    marks = []
    original = flop_recording.mark_backward

    def counting_mark(state, param=None):
        marks.append(param)
        original(state, param)
    monkeypatch.setattr(flop_recording, "mark_backward", counting_mark)
    net, x, y = mlp(), torch.randn(8, 784), torch.randint(0, 10, (8,))
    params = list(net.parameters())
    with Meter(["flops"]) as meter:
        meter.begin_window("interval", model=net)
        for _ in range(20):
            train_step(net, x, y)
        interval = meter.end_window("interval")
        assert interval.flops == 20 * (FORWARD + BACKWARD) // 16
        assert len(marks) == len(params)  # the first backward's marks; the second step's forward parked them
        assert all(not p._post_accumulate_grad_hooks for p in params)
        meter.begin_window("step", model=net)  # a new window puts them back
        assert all(len(p._post_accumulate_grad_hooks) == 1 for p in params)
        train_step(net, x, y)
        assert meter.end_window("step").flops == (FORWARD + BACKWARD) // 16
        meter.begin_window("forward", model=net)
        net(x)
        assert meter.end_window("forward").flops == FORWARD // 16
    assert all(not p._post_accumulate_grad_hooks for p in params)  # closed: parked or not, nothing stays


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overlapping_windows_count_backward_exactly_when_one_ran_inside_them_over_random_sequences(seed):
    import random
    rng = random.Random(seed)
    torch.manual_seed(seed)
    net, x, y = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)), \
        torch.randn(4, 6), torch.randint(0, 3, (4,))
    params = list(net.parameters())
    with Meter(["flops"]) as meter:
        meter.begin_window("f", model=net)
        net(x)
        forward = meter.end_window("f").flops
        meter.begin_window("t", model=net)
        train_step(net, x, y)
        step = meter.end_window("t").flops
        assert step > forward > 0
        open_windows: dict[str, list] = {}  # name -> [calls, backward ran]
        checked = 0
        for i in range(300):
            action = rng.choice(["open", "close", "forward", "step", "step", "outside"])
            if action == "open" and len(open_windows) < 3:
                name = f"w{i}"
                meter.begin_window(name, model=net)
                open_windows[name] = [0, False]
            elif action == "close" and open_windows:
                name = rng.choice(sorted(open_windows))
                calls, ran = open_windows.pop(name)
                flops = meter.end_window(name).flops
                assert flops == (calls * (step if ran else forward) if calls else None), (i, name, calls, ran)
                checked += 1
            elif action in ("forward", "step") and open_windows:
                if action == "forward":
                    net(x)
                else:
                    train_step(net, x, y)
                for entry in open_windows.values():
                    entry[0] += 1
                    entry[1] = entry[1] or action == "step"
            elif action == "outside" and not open_windows:
                train_step(net, x, y)  # no window open: nobody is marked, nothing is recorded
            assert all(len(p._post_accumulate_grad_hooks) <= 1 for p in params)
        assert checked > 20


def test_a_parameter_frozen_with_its_hook_dict_replaced_while_the_marks_rest_leaves_later_windows_counting():
    from collections import OrderedDict
    net, x, y = mlp(), torch.randn(8, 784), torch.randint(0, 10, (8,))
    with Meter(["flops"]) as meter:
        meter.begin_window("rest", model=net)
        train_step(net, x, y)
        train_step(net, x, y)  # this forward parks the marks
        meter.end_window("rest")
        frozen = net[0].bias
        frozen._post_accumulate_grad_hooks = OrderedDict()
        frozen.requires_grad_(False)
        for name in ("after", "again"):
            meter.begin_window(name, model=net)  # puts the marks back on the others; the frozen one's goes
            train_step(net, x, y)
            assert meter.end_window(name).flops == (FORWARD + BACKWARD) // 16


def test_two_meters_open_on_one_module_both_count_it_and_either_may_close_first():
    net, x, y = mlp(), torch.randn(8, 784), torch.randint(0, 10, (8,))
    first, second = Meter(["flops"]), Meter(["flops"])
    for order in (("a", "b"), ("b", "a")):
        first.begin_window("a", model=net)
        second.begin_window("b", model=net)
        train_step(net, x, y)
        ended = {name: (first if name == "a" else second).end_window(name).flops for name in order}
        assert ended == {"a": (FORWARD + BACKWARD) // 16, "b": (FORWARD + BACKWARD) // 16}
    first.close()
    second.begin_window("b", model=net)  # the second meter's recorder outlives the first's
    train_step(net, x, y)
    assert second.end_window("b").flops == (FORWARD + BACKWARD) // 16
    second.close()
    assert "forward" not in vars(net) and not net._forward_pre_hooks
    assert all(not p._post_accumulate_grad_hooks for p in net.parameters())
