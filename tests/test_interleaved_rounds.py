"""The interleaved, paired inference design: balanced orders, typed rounds records, and drift that cancels."""

import itertools
import math
import threading
import time
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from energymeter import Meter  # noqa: E402
from energymeter.validation.analysis.analysis import analyse  # noqa: E402
from energymeter.validation.analysis.rounds import paired_comparisons  # noqa: E402
from energymeter.validation.records import store  # noqa: E402
from energymeter.validation.records.rounds import InferenceRound, RoundsRecord, RoundWindow  # noqa: E402
from energymeter.validation.run.config import SweepConfig  # noqa: E402
from energymeter.validation.run.rounds import balanced_orders, measure_rounds, williams_rows  # noqa: E402
from energymeter.validation.run.sweep import LocalExecutor, run_sweep  # noqa: E402


class DrivenCounters:
    """A reader for a fake powercap tree whose package power the test drives: ``power_w(t)`` watts at ``t``
    seconds since the start (whatever the model does), plus ``joules_per_activation`` J for every unit of
    squared ReLU output computed (energy proportional to the work), counted by a global forward hook."""

    def __init__(self, powercap, power_w, joules_per_activation=0.0, per_unit=None):
        powercap.add_package(0)
        self.root = str(powercap.root)
        self.power_w, self.k = power_w, joules_per_activation
        # per_unit(t): joules per ReLU output element computed at t (work whatever the values; None: none).
        self.per_unit = per_unit
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.last_t, self.energy_j, self.work_j = 0.0, 0.0, 0.0
        self.hook = None

    def __enter__(self):
        def hook(module, inputs, output):
            if isinstance(module, torch.nn.ReLU) and (self.k or self.per_unit):
                with self.lock:
                    if self.k:
                        self.work_j += self.k * float(output.detach().pow(2).sum())
                    if self.per_unit:
                        self.work_j += self.per_unit(time.monotonic() - self.start) * output.numel()

        self.hook = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.hook.remove()

    def __call__(self, path):
        if not path.endswith("intel-rapl:0/energy_uj"):
            with open(path) as handle:
                return handle.read()
        with self.lock:
            t = time.monotonic() - self.start
            steps = max(1, int((t - self.last_t) / 1e-3))  # integrate the driven power in 1 ms steps
            dt = (t - self.last_t) / steps
            self.energy_j += sum(self.power_w(self.last_t + (i + 0.5) * dt) * dt for i in range(steps))
            self.last_t = t
            return f"{int((self.energy_j + self.work_j) * 1e6)}\n"


def _meter(counters):
    return Meter(["rapl"], powercap_root=counters.root, reader=counters, max_power_w=1e5)


def _net(scale):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        net[0].weight.mul_(scale)
    return net


FAST = dict(round_min_window_s=0.01, round_min_workloads=3, rounds_min=6, rounds_max=12, rounds_budget_s=5.0,
            rounds_target_width=0.0)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_each_block_of_rounds_puts_every_network_once_in_every_position(n):
    orders = balanced_orders(n, 4 * n, seed=7)
    for block in range(4):
        rows = orders[block * n:(block + 1) * n]
        assert all(sorted(r) == list(range(n)) for r in rows)
        for position in range(n):
            assert sorted(r[position] for r in rows) == list(range(n))


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_williams_rows_let_every_network_follow_every_other_equally_often(n):
    pairs = Counter((a, b) for row in williams_rows(n) for a, b in zip(row, row[1:]))
    assert set(pairs) == {(a, b) for a, b in itertools.permutations(range(n), 2)}
    assert len(set(pairs.values())) == 1


def test_orders_are_fresh_per_square_and_fixed_by_their_seed():
    assert balanced_orders(5, 20, 3) == balanced_orders(5, 20, 3)
    assert balanced_orders(5, 20, 3) != balanced_orders(5, 20, 4)
    assert balanced_orders(5, 30, 3)[:20] == balanced_orders(5, 20, 3)  # more rounds continue the same orders
    squares = [tuple(balanced_orders(4, 12, 1)[i:i + 4]) for i in (0, 4, 8)]
    assert len(set(squares)) > 1


def test_rounds_records_round_trip_through_the_store_and_old_sweeps_have_none(tmp_path):
    assert store.read_rounds(tmp_path) == ([], [])
    windows = (RoundWindow(0.01, {"cpu:0:package": 2.5}, 0.2, 7), RoundWindow(0.0, {"cpu:0:package": 3.0}, 0.21, 7))
    record = RoundsRecord("mlp", "digits", "l2/sum", 1, (0.0, 0.01), 64, {"cpu:0:package": "measured"},
                          (InferenceRound(0, windows),), 0.1, 5, 99, 0.05, 10.0, 60, "stopped at the most rounds")
    store.append_rounds(tmp_path, record)
    (tmp_path / store.ROUNDS_FILE).open("a").write("{not json\n")
    back, problems = store.read_rounds(tmp_path)
    assert back == [record] and len(problems) == 1
    assert back[0].rounds[0].order == (0.01, 0.0)


def test_a_power_step_independent_of_the_model_cancels_within_rounds(powercap):
    start = time.monotonic()
    counters = DrivenCounters(powercap, lambda t: 60.0 if t < 0.6 else 42.0)  # -30% about halfway through
    meter = _meter(counters)
    config = SweepConfig(**{**FAST, "round_min_window_s": 0.05})  # 12 rounds of 2 windows: 1.2 s at least
    with counters:
        record = measure_rounds({0.0: _net(1.0), 0.01: _net(0.3)}, torch.randn(32, 64), meter, config,
                                ("mlp", "digits", "l2/sum", 0))
    meter.close()
    assert time.monotonic() - start > 0.6, "the step fell inside the rounds"
    (comparison,) = paired_comparisons([record])
    interval = comparison.seeds[0].mean_log_ratio
    assert interval.low < 0 < interval.high, interval


def test_energy_proportional_to_the_work_is_detected_paired_by_round(powercap):
    # 10 mJ per unit of squared activation: the work dominates the 60 W floor (about 100 kW on an idle core, so
    # still 10x the floor on a machine 100x slower under load: the floor's share had reached half the ratio on a
    # loaded CI machine at 1 mJ), under the meter's 1 MW ceiling however many forwards a window holds.
    counters = DrivenCounters(powercap, lambda t: 60.0 if t < 0.4 else 42.0, joules_per_activation=1e-2)
    meter = Meter(["rapl"], powercap_root=counters.root, reader=counters, max_power_w=1e6)
    with counters:
        record = measure_rounds({0.0: _net(1.0), 0.01: _net(0.3)}, torch.randn(32, 64), meter, SweepConfig(**FAST),
                                ("mlp", "digits", "l2/sum", 0))
    meter.close()
    (comparison,) = paired_comparisons([record])
    interval = comparison.seeds[0].mean_log_ratio
    assert interval.high < math.log(0.5), interval  # squared activations fall 11x; energy follows them


def test_rounds_stop_once_every_interval_is_narrower_than_the_target(powercap):
    counters = DrivenCounters(powercap, lambda t: 50.0)
    meter = _meter(counters)
    config = SweepConfig(**{**FAST, "rounds_target_width": 10.0, "rounds_min": 2, "rounds_max": 40})
    with counters:
        record = measure_rounds({0.0: _net(1.0), 0.01: _net(0.5)}, torch.randn(8, 64), meter, config,
                                ("mlp", "digits", "l2/sum", 0))
    meter.close()
    assert len(record.rounds) < 40 and len(record.rounds) % 2 == 0 and "narrower than 10" in record.stop_reason
    assert all(w.workloads >= 3 for r in record.rounds for w in r.windows)


def test_rounds_stop_at_the_time_budget_at_a_blocks_end(powercap):
    counters = DrivenCounters(powercap, lambda t: 50.0)
    meter = _meter(counters)
    config = SweepConfig(**{**FAST, "rounds_budget_s": 0.0, "rounds_min": 1, "rounds_max": 40})
    with counters:
        record = measure_rounds({0.0: _net(1.0), 0.01: _net(0.5), 0.1: _net(0.2)}, torch.randn(8, 64), meter, config,
                                ("mlp", "digits", "l2/sum", 0))
    meter.close()
    # Three networks: a Williams block is 6 rounds (two squares), and the budget is read at its end only, so the
    # block stays balanced: every network in every position twice.
    assert len(record.rounds) == len(williams_rows(3)) == 6 and "time budget" in record.stop_reason
    assert sorted(record.rounds[0].order) == [0.0, 0.01, 0.1]
    positions = Counter((i, lam) for r in record.rounds for i, lam in enumerate(r.order))
    assert set(positions.values()) == {2}


@pytest.mark.slow
def test_an_interleaved_sweep_under_decaying_power_reports_no_tracking_and_pairs_by_round(powercap, tmp_path):
    # Power decays from 60 W towards 5 W whatever the model does (the case of a false "tracks").
    counters = DrivenCounters(powercap, lambda t: 5.0 + 55.0 * math.exp(-t / 4.0))
    meter = _meter(counters)
    config = SweepConfig(lambdas=(0.0, 1e-2), seeds=3, epochs=1, idle_s=0.01, reference_s=0.0, snn_samples=0,
                         inference_samples=64, backends=("rapl",), **FAST)
    with counters:
        run_sweep(config, tmp_path / "out", quiet=True, executor=LocalExecutor(meter))
    meter.close()
    records, problems = store.read_records(tmp_path / "out")
    rounds, round_problems = store.read_rounds(tmp_path / "out")
    assert len(records) == 6 and not problems and not round_problems
    assert sorted(r.design for r in rounds) == ["chunked-training"] * 3 + ["interleaved"] * 3
    analysis = analyse(records, rounds=rounds)
    assert analysis.training_design.startswith("chunked training, 1 epochs per network")
    assert any("[training: chunked training" in c.sentence for c in analysis.claims)
    inference = [c for c in analysis.claims if c.kind == "energy_tracking" and "inference" in c.figure]
    assert inference and all(c.verdict != "tracks" for c in inference), [c.sentence for c in inference]
    (raw,) = [p for p in analysis.inference_rounds if p.domain == "cpu:0:package"]
    assert raw.design.startswith("interleaved rounds") and raw.design.endswith("3 seeds")
    assert raw.across_seeds.low < 0 < raw.across_seeds.high


def test_comparisons_that_cannot_be_computed_fail_alone_and_the_analysis_stands(monkeypatch):
    from energymeter.validation.analysis import analysis as analysis_module

    record = RoundsRecord("mlp", "digits", "l2/sum", 0, (0.0, 0.01), 8, {"cpu:0:package": "measured"},
                          (InferenceRound(0, (RoundWindow(0.0, {"cpu:0:package": 1.0}, 0.1, 1),
                                              RoundWindow(0.01, {"cpu:0:package": 0.5}, 0.1, 1))),))

    def broken(rounds):
        raise OverflowError("a figure too large")

    monkeypatch.setattr(analysis_module, "paired_comparisons", broken)
    a = analyse([], rounds=[record])
    assert a.inference_rounds == () and any("OverflowError" in w and "could not be computed" in w for w in a.warnings)
