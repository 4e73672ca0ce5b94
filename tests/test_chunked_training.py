"""Training blocked against drift: a group's networks trained round-robin, an epoch each per round."""

import math

import pytest

torch = pytest.importorskip("torch")

from energymeter import Meter  # noqa: E402
from energymeter.models import build, load_dataset, train  # noqa: E402
from energymeter.validation.analysis.rounds import paired_comparisons  # noqa: E402
from energymeter.validation.run.chunks import concatenate, train_chunked  # noqa: E402

from test_interleaved_rounds import DrivenCounters  # noqa: E402

GROUP = ("mlp", "digits", "l2/sum", 1)


def _models(lambdas):
    data = load_dataset("digits")
    return data, {lam: build("mlp", data.in_shape, data.num_classes, seed=1) for lam in lambdas}


def test_chunked_networks_end_with_the_parameters_one_after_another_training_gives(powercap):
    counters = DrivenCounters(powercap, lambda t: 20.0)
    meter = Meter(["rapl"], powercap_root=counters.root, reader=counters, max_power_w=1e5)
    data, models = _models((0.0, 1e-3, 1e-2))
    with counters:
        trained, record = train_chunked(models, data, meter, GROUP, epochs=3, batch_size=128, lr=1e-3,
                                        device="cpu", order_seed=0)
    meter.close()
    for lam, chunked in trained.items():
        alone = build("mlp", data.in_shape, data.num_classes, seed=1)
        expected = train(alone, data, lam=lam, epochs=3, seed=1)
        for (name, a), (_, b) in zip(alone.state_dict().items(), models[lam].state_dict().items()):
            assert torch.equal(a, b), (lam, name)
        assert chunked.result.test_accuracy == expected.test_accuracy
        assert [h.activation_energy for h in chunked.result.history] == [h.activation_energy for h in expected.history]
        # The training window is its chunks added up; epoch k's cumulative window the first k chunks.
        total = sum(m.energy_j["cpu:0:package"] for m in chunked.chunks)
        assert chunked.result.measurement.energy_j["cpu:0:package"] == pytest.approx(total, rel=1e-12)
        cumulative = [h.measurement.energy_j["cpu:0:package"] for h in chunked.result.history]
        assert cumulative == sorted(cumulative) and cumulative[-1] == pytest.approx(total, rel=1e-12)
        assert len(chunked.result.epoch_states) == 3
    assert record.design == "chunked-training" and len(record.rounds) == 3
    assert all(sorted(r.order) == [0.0, 1e-3, 1e-2] for r in record.rounds)
    assert len({r.order for r in record.rounds}) > 1  # a fresh order per round


def test_a_step_in_the_cost_of_work_during_training_falls_on_every_lambda_alike(powercap):
    # Every ReLU output element costs 1 uJ, then 3 uJ from 1 s on, whatever the model or lambda: the networks do
    # the same work per epoch, so the truth is a ratio of 1. Trained one after another, lambda = 1e-2 would pay the
    # step alone (about 3x); paired by round, the step falls on one round at most.
    counters = DrivenCounters(powercap, lambda t: 0.0, per_unit=lambda t: 1e-6 if t < 1.0 else 3e-6)
    meter = Meter(["rapl"], powercap_root=counters.root, reader=counters, max_power_w=1e5)
    data, models = _models((0.0, 1e-2))
    with counters:
        _, record = train_chunked(models, data, meter, GROUP, epochs=8, batch_size=128, lr=1e-3, device="cpu",
                                  order_seed=0)
    meter.close()
    (comparison,) = [c for c in paired_comparisons([record]) if c.domain == "cpu:0:package"]
    (seed,) = comparison.seeds
    assert seed.rounds == 8
    assert abs(seed.median_log_ratio) < math.log(1.01), seed
    steps = [r for r in record.rounds if len({round(w.energy_j["cpu:0:package"], 3) for w in r.windows}) > 1]
    assert len(steps) <= 1  # the round the step fell in, if any


def test_concatenated_windows_fail_a_domain_any_window_failed():
    from energymeter.measurement import Measurement

    a = Measurement("a", 1.0, {"x": 2.0, "y": 1.0}, provenance={"x": "measured", "y": "measured"}, flops=10)
    b = Measurement("b", 2.0, {"x": 3.0}, provenance={"x": "measured"}, flops=5,
                    failed={"y": "counter froze"})
    m = concatenate([a, b], "train")
    assert m.duration_s == 3.0 and dict(m.energy_j) == {"x": 5.0} and m.failed == {"y": "counter froze"}
    assert m.flops == 15
