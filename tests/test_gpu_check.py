"""The prepared GPU check (docs/hardware-checks/gpu_check.py) run end to end against a fake NVML.

The fake GPU charges each GEMM an energy computed from its left operand by a rule the test picks, so
the data-dependent table must report ratios the test can compute; a swapped operand, a miscounted
GEMM, a window that loses its charges or a ratio taken the wrong way round changes them.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from energymeter import Measurement  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "hardware-checks" / "gpu_check.py"
CLASSES = ("dense-random", "lambda0-acts", "lambda1e-2-acts", "lambda0-acts/31.6", "zeros")
NETWORKS = ("lambda0", "lambda1e-2", "lambda0-rescaled")
DTYPES = ("float16", "float32")
FAKE_ARGS = ["--fake", "--budget-s", "60", "--seconds", "0.3", "--size", "64", "--repeats", "2",
             "--gemm-size", "64", "--window-s", "0.15", "--rounds", "3", "--inference-rounds", "3", "--batch", "64",
             "--dataset", "digits", "--epochs", "1"]
NUMBER = r"[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?"
ROW = re.compile(rf"^(?P<name>{'|'.join(map(re.escape, CLASSES))})\s+(?P<zero>{NUMBER})\s+(?P<subn>{NUMBER})\s+"
                 rf"(?P<msq>{NUMBER})\s+(?P<n>\d+)\s+(?P<j>{NUMBER})\s+\[(?P<jlo>{NUMBER}), (?P<jhi>{NUMBER})\]\s+"
                 rf"(?P<r>{NUMBER})\s+\[(?P<rlo>{NUMBER}), (?P<rhi>{NUMBER})\]\s+(?P<pairs>\d+)\s", re.MULTILINE)
NET_ROW = re.compile(rf"^(?P<name>{'|'.join(NETWORKS)})\s+(?P<dtype>float16|float32)\s+(?P<e>{NUMBER})\s+"
                     rf"(?P<zero>{NUMBER})\s+(?P<subn>{NUMBER})\s+(?P<acc>{NUMBER})\s+(?P<n>\d+)\s+(?P<j>{NUMBER})\s+"
                     rf"\[(?P<jlo>{NUMBER}), (?P<jhi>{NUMBER})\]\s+(?P<r>{NUMBER})\s+\[(?P<rlo>{NUMBER}), "
                     rf"(?P<rhi>{NUMBER})\]\s+(?P<pairs>\d+)\s", re.MULTILINE)


def load_script():
    """The script as a module (registered first: its dataclasses look their module up in sys.modules)."""
    name = "energymeter_docs_gpu_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def mj_per_gemm(operand) -> float:
    """The test's rule: 1 mJ plus 9 mJ times the left operand's nonzero fraction."""
    return 1.0 + 9.0 * float((operand != 0).double().mean())


def mj_per_sample(stats) -> float:
    """The test's inference rule: 1 mJ plus 9 mJ times the hidden outputs' nonzero fraction, whatever E is."""
    return 1.0 + 9.0 * (1.0 - stats.zero_fraction)


@pytest.fixture(scope="module")
def fake_run_output():
    module = load_script()
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = module.main(FAKE_ARGS, fake_energy_mj_per_gemm=mj_per_gemm, fake_energy_mj_per_sample=mj_per_sample)
    return status, buffer.getvalue()


def table_rows(out: str, pattern: re.Pattern = ROW) -> dict:
    rows = {}
    for match in pattern.finditer(out):
        key = (match["name"], match["dtype"]) if "dtype" in pattern.groupindex else match["name"]
        rows[key] = {k: float(v) for k, v in match.groupdict().items() if k not in ("name", "dtype")}
    return rows


def test_fake_run_prints_devices_including_the_fake_nvml_gpu(fake_run_output):
    status, out = fake_run_output
    assert status == 0
    devices = out.split("== energymeter devices", 1)[1].split("==", 1)[0]
    assert re.search(r"^cpu-model\s+available", devices, re.MULTILINE)  # the real `energymeter devices` table
    assert re.search(r"^nvml\s+available\s+measured \[gpu:0\]", devices, re.MULTILINE)  # the fake's probe


def test_fake_run_characterises_the_gpu_counter_first_and_prints_its_period_and_resolution(fake_run_output):
    _, out = fake_run_output
    section = out.split("== the GPU's energy counter, characterised", 1)[1].split("==", 1)[0]
    match = re.search(rf"gpu:0: update period ({NUMBER}) s measured, resolution ({NUMBER}) J measured, "
                      rf"idle ({NUMBER}) W measured", section)
    assert match, section
    assert 90 < float(match.group(3)) < 110  # the fake GPU draws 100 W throughout
    assert out.index("characterised") < out.index("sampling / counter")  # before anything is measured


def test_fake_counter_and_sampling_agree_on_a_constant_power_gpu(fake_run_output):
    _, out = fake_run_output
    ratios = [float(v) for v in re.findall(rf"sampling / counter = ({NUMBER})", out)]
    assert len(ratios) == 2  # one per --repeats window
    # The fake draws 100 W throughout: the counter and the integrated samples must both say so.
    assert all(0.95 < r < 1.05 for r in ratios), ratios
    joules = [float(v) for v in re.findall(rf"counter ({NUMBER}) J \(measured\), sampling {NUMBER} J \(integrated\)",
                                           out)]
    assert all(100 * 0.28 < j < 100 * 0.6 for j in joules), joules  # 100 W over windows of 0.3 s and a little more


def test_data_dependent_table_reports_the_energy_the_fake_gpu_charged_each_of_five_classes(fake_run_output):
    _, out = fake_run_output
    rows = table_rows(out)
    assert set(rows) == set(CLASSES)
    dense = 1.0 + 9.0  # mJ: N(0, 1) in fp16 has no zeros
    for name, row in rows.items():
        expected_mj = 1.0 + 9.0 * (1.0 - row["zero"])
        assert row["n"] == 3 and row["pairs"] == 3  # three rounds, one window per class each
        assert row["j"] == pytest.approx(expected_mj / 1000, rel=0.01), name
        assert row["jlo"] <= row["j"] <= row["jhi"]
        assert row["r"] == pytest.approx(expected_mj / dense, rel=0.01), name
        assert row["rlo"] <= row["r"] <= row["rhi"]
    assert rows["dense-random"]["zero"] == 0.0 and rows["dense-random"]["msq"] == pytest.approx(1.0, rel=0.1)
    assert rows["zeros"]["zero"] == 1.0 and rows["zeros"]["msq"] == 0.0 and rows["zeros"]["subn"] == 0.0
    assert rows["zeros"]["r"] == pytest.approx(0.1, rel=0.01)
    # The energy penalty did what it is for: sparser, smaller first-layer activations than at lambda = 0.
    assert rows["lambda1e-2-acts"]["zero"] > rows["lambda0-acts"]["zero"] > 0.0
    assert 0.0 < rows["lambda1e-2-acts"]["msq"] < rows["lambda0-acts"]["msq"]
    # The fifth class: the lambda = 0 activations / 31.6, the same zeros and 1000x less E per element.
    scaled = rows["lambda0-acts/31.6"]
    assert scaled["zero"] == rows["lambda0-acts"]["zero"]
    assert scaled["msq"] == pytest.approx(rows["lambda0-acts"]["msq"] / 1000, rel=0.01)
    assert scaled["subn"] > rows["lambda0-acts"]["subn"]  # dividing by 31.6 pushes small values below 2^-14
    line = re.search(rf"lambda1e-2-acts over lambda0-acts: E per element x({NUMBER}); J per GEMM \(measured\) "
                     rf"x({NUMBER})", out)
    assert float(line[1]) == pytest.approx(rows["lambda1e-2-acts"]["msq"] / rows["lambda0-acts"]["msq"], rel=0.01)
    assert float(line[2]) == pytest.approx(rows["lambda1e-2-acts"]["r"] / rows["lambda0-acts"]["r"], rel=0.01)
    assert "the lambda1e-2-acts operand costs less energy per GEMM than the lambda0-acts one" in out
    line = re.search(rf"lambda0-acts/31.6 over lambda0-acts: E per element x({NUMBER}); J per GEMM", out)
    assert float(line[1]) == pytest.approx(0.001, rel=0.01)


def test_fp16_subnormal_fraction_counts_nonzero_values_below_two_to_the_minus_14():
    module = load_script()
    # 1e-5 and -3e-5 are subnormal in fp16; 6.2e-5 is normal; 1e-8 rounds to zero in fp16; 0 is zero.
    values = torch.tensor([0.0, 1e-5, 6.2e-5, 1e-8, -3e-5, 1.0, -2.0, 0.5])
    assert module.fp16_subnormal_fraction(values) == pytest.approx(2 / 8)


def test_inference_table_reports_j_per_sample_the_fake_gpu_charged_each_network_and_dtype(fake_run_output):
    _, out = fake_run_output
    section = out.split("== Inference", 1)[1].split("==", 1)[0]
    assert "batch of 64 x 64" in section and "3 round(s) x 6 conditions" in section
    rows = table_rows(section, NET_ROW)
    assert set(rows) == {(n, d) for n in NETWORKS for d in DTYPES}
    for (name, dtype), row in rows.items():
        expected_mj = 1.0 + 9.0 * (1.0 - row["zero"])
        base_mj = 1.0 + 9.0 * (1.0 - rows[("lambda0", dtype)]["zero"])
        assert row["n"] == 3 and row["pairs"] == 3
        assert row["j"] == pytest.approx(expected_mj / 1000, rel=0.01), (name, dtype)
        assert row["r"] == pytest.approx(expected_mj / base_mj, rel=0.01), (name, dtype)
        assert row["rlo"] <= row["r"] <= row["rhi"]
    for dtype in DTYPES:
        base, rescaled = rows[("lambda0", dtype)], rows[("lambda0-rescaled", dtype)]
        # The rescaled network: the same function (accuracy) and zeros, l2 E 1000x lower, more fp16 subnormals.
        assert rescaled["zero"] == base["zero"] and rescaled["acc"] == base["acc"]
        assert rescaled["e"] == pytest.approx(base["e"] / 1000, rel=0.01)
        assert rescaled["subn"] > base["subn"]
        assert rows[("lambda1e-2", dtype)]["e"] < base["e"]


def test_the_verdict_is_the_suites_elasticity_rule_read_from_the_printed_ratios(fake_run_output):
    from energymeter.validation.analysis.stats import MIN_ELASTICITY, NULL_ELASTICITY

    _, out = fake_run_output
    section = out.split("== Inference", 1)[1].split("==", 1)[0]
    rows = table_rows(section, NET_ROW)
    assert f"lies above {MIN_ELASTICITY}" in section and f"inside +-{NULL_ELASTICITY}" in section
    for dtype in DTYPES:
        for name in NETWORKS[1:]:
            line = re.search(rf"^verdict {name} vs lambda0, {dtype}: E x({NUMBER}); J per sample \(measured\) "
                             rf"x({NUMBER}) .*?; elasticity: (\w+) \(elasticity ({NUMBER}) .*?; energy change: (\w+)",
                             section, re.MULTILINE)
            assert line, (name, dtype)
            e_ratio = rows[(name, dtype)]["e"] / rows[("lambda0", dtype)]["e"]
            assert float(line[1]) == pytest.approx(e_ratio, rel=0.01)
            # Within a round the elasticity of two points is log(J ratio) / log(E ratio).
            expected = math.log(rows[(name, dtype)]["r"]) / math.log(e_ratio)
            assert float(line[4]) == pytest.approx(expected, abs=0.005)
            # The fake charges by zeros: the trained network's sparser activations cost less (a fall well past
            # the thresholds); the rescaled one's identical zeros cost the same although E fell 1000x.
            assert line[3] == ("tracks" if name == "lambda1e-2" else "does_not_track"), line[0]
            assert line[5] == ("tracks" if name == "lambda1e-2" else "does_not_track"), line[0]
        assert re.search(rf"^in {dtype}: the joules followed E where training changed the network, not where a pure "
                         "rescaling changed E alone", section, re.MULTILINE)


def windows_of(module, j_by_round: dict[str, list[float]]):
    results = {}
    for name, values in j_by_round.items():
        record = module.Windows()
        record.by_round = dict(enumerate(values))
        record.j_per_unit = list(values)
        results[name] = record
    return results


def stats_with(module, activation_energy: float):
    return module.NetworkStats(activation_energy, 0.5, 0.0, 0.9)


def test_compare_says_tracks_when_joules_follow_e_and_does_not_track_when_they_ignore_it():
    module = load_script()
    noise = [1.0, 1.01, 0.99, 1.02, 0.98]
    stats = {"lambda0": stats_with(module, 1000.0), "lambda1e-2": stats_with(module, 1.0),
             "lambda0-rescaled": stats_with(module, 1.0)}
    results = windows_of(module, {"lambda0 float16": [2.0 * k for k in noise],
                                  "lambda1e-2 float16": [2.0 * 1000 ** -0.5 * k for k in noise[::-1]],
                                  "lambda0-rescaled float16": [2.0 * k for k in noise[1:] + noise[:1]]})
    follows = module.compare(results, stats, "lambda1e-2", "float16")
    assert follows.elasticity.verdict == "tracks" and follows.energy_change.verdict == "tracks"
    assert follows.elasticity.n == 5 and follows.elasticity.estimate == pytest.approx(0.5, abs=0.01)
    assert follows.activation_energy_ratio == pytest.approx(0.001)
    ignores = module.compare(results, stats, "lambda0-rescaled", "float16")
    assert ignores.elasticity.verdict == "does_not_track" and ignores.energy_change.verdict == "does_not_track"
    assert abs(ignores.elasticity.estimate) < 0.01


def test_compare_decides_nothing_from_two_rounds():
    module = load_script()
    stats = {"lambda0": stats_with(module, 1000.0), "lambda1e-2": stats_with(module, 1.0)}
    results = windows_of(module, {"lambda0 float32": [2.0, 2.1], "lambda1e-2 float32": [1.0, 1.1]})
    two = module.compare(results, stats, "lambda1e-2", "float32")
    assert two.elasticity.verdict == "inconclusive" and "needs 3 seeds" in two.elasticity.reason


def test_fake_run_skips_validate_by_default_and_prints_the_command_a_gpu_run_would_execute(fake_run_output):
    _, out = fake_run_output
    section = out.split("== energymeter validate --device cuda:0 --quick", 1)[1]
    assert "skipped: --validate-reserve-s 0" in section
    assert re.search(r"-m energymeter validate --device cuda:0 --quick --quiet --out <tmpdir>", section)


def test_defaults_fit_a_15_minute_loan_and_train_40_epochs():
    module = load_script()
    args = module._parser().parse_args([])
    assert args.budget_s == 360 and args.validate_reserve_s == 0 and args.epochs == 40
    assert args.inference_rounds == 15 and args.batch == 65536 and args.window_s == 2.0
    # With the earlier parts done in 90 s, the inference still gets every one of its 15 rounds.
    planned = module.planned_s(6, 15, 2.0, module.INFERENCE_SETUP_S)
    assert module.inference_share_s(args, 360 - 90) == pytest.approx(planned)
    assert planned > 6 * 15 * 2.0


def test_a_short_budget_keeps_the_gemm_part_its_minimum_rounds_before_the_inference_loses_any():
    module = load_script()
    args = module._parser().parse_args([])
    gemm_min_s = module.planned_s(5, module.GEMM_MIN_ROUNDS, 2.0)
    assert module.inference_share_s(args, 100.0) == pytest.approx(100.0 - gemm_min_s)
    assert module.inference_share_s(args, 10.0) == 0.0


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch", "0"], ["--window-s", "0"],
                                  ["--validate-reserve-s", "-1"]])
def test_bad_input_exits_2_with_one_line(argv, capsys):
    module = load_script()
    assert module.main(["--fake", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpu_check: --")


def test_the_validate_command_is_one_the_cli_accepts():
    module = load_script()
    from energymeter.cli import build_parser

    command = module.validate_command("/tmp/out")
    assert command[1:3] == ["-m", "energymeter"]
    argv = command[3:]
    args = build_parser(argv).parse_args(argv)
    assert args.subcommand == "validate"
    assert args.device == "cuda:0" and args.quick and args.quiet and args.out == "/tmp/out"


class ChargedMeter:
    """A stand-in Meter whose gpu:0 joules are exactly what the check charged inside each window."""

    def __init__(self, fail: set[int] = frozenset()) -> None:
        self.order: list[str] = []
        self.fail = fail
        self._charged_mj = 0.0
        self._open: tuple[str, float, float] | None = None

    def charge(self, name: str, gemms: int) -> None:
        self._charged_mj += {"a": 4.0, "b": 2.0, "c": 1.0}[name] * gemms

    def begin_window(self, name: str) -> None:
        self._open = (name, self._charged_mj, time.monotonic())

    def end_window(self, name: str) -> Measurement:
        opened, before_mj, start = self._open
        assert opened == name
        self.order.append(name)
        duration_s = time.monotonic() - start
        if len(self.order) - 1 in self.fail:
            return Measurement(name, duration_s, failed={"gpu:0": "NVML: Timeout"})
        return Measurement(name, duration_s, energy_j={"gpu:0": (self._charged_mj - before_mj) / 1000},
                           provenance={"gpu:0": "measured"})


def workloads_of(module, names: str) -> dict:
    a = torch.ones(8, 8)
    return {name: module.Workload(lambda: a @ a) for name in names}


def no_state(uuid):
    return load_script().GpuState()


def test_windows_rotate_the_class_order_and_leave_out_failed_windows_with_their_reason():
    module = load_script()
    meter = ChargedMeter(fail={4})  # the second round's second window: class c
    results, rounds = module.run_windows(meter, workloads_of(module, "abc"), "cpu", 0.02, 3, time.monotonic() + 60,
                                         no_state, charge=meter.charge)
    assert rounds == 3
    assert meter.order == list("abc" "bca" "cab")
    assert results["c"].failed == ["NVML: Timeout"] and len(results["c"].j_per_unit) == 2
    assert sorted(results["c"].by_round) == [0, 2]
    assert results["a"].j_per_unit == pytest.approx([0.004] * 3)
    ratio = module.ratio_to(results, "c", "a")
    assert ratio.n == 2 and ratio.estimate == pytest.approx(0.25)


def test_interleaved_rounds_each_run_every_condition_once_in_a_fresh_order():
    module = load_script()
    meter = ChargedMeter()
    names = "abc"
    results, rounds = module.run_windows(meter, workloads_of(module, names), "cpu", 0.01, 6, time.monotonic() + 60,
                                         no_state, module.shuffled(0), meter.charge)
    assert rounds == 6
    orders = ["".join(meter.order[i:i + 3]) for i in range(0, 18, 3)]
    assert all(sorted(order) == list(names) for order in orders)  # balanced: each condition once a round
    assert len(set(orders)) > 1  # fresh: not one order repeated
    assert orders == ["".join(module.shuffled(0)(list(names), r)) for r in range(6)]  # seeded: reproducible
    assert all(sorted(results[n].by_round) == list(range(6)) for n in names)


def test_rounds_stop_when_the_next_one_would_end_after_the_budget():
    module = load_script()
    meter = ChargedMeter()
    ticks = iter(range(10**6))

    def clock() -> float:  # a fake clock: every reading is 0.1 s after the previous, whatever the machine does
        return next(ticks) * 0.1

    # Rounds read the clock at the check, at their start and at their end: a round "takes" 0.1 s, and the
    # next one runs only while the check time + max(last round, 3 windows of 0.05 s) < 1.0. Checks fall at
    # 0.0, 0.3, 0.6 (0.6 + 0.15 < 1.0) and 0.9 (0.9 + 0.15 >= 1.0): exactly 3 rounds.
    results, rounds = module.run_windows(meter, workloads_of(module, "abc"), "cpu", 0.05, 1000, 1.0, no_state,
                                         charge=meter.charge, clock=clock)
    assert rounds == 3
    assert len(meter.order) == 3 * rounds


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine this would run the whole check")
def test_without_a_cuda_device_and_without_fake_the_check_exits_2_with_one_line(capsys):
    module = load_script()
    assert module.main(["--budget-s", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err and "--fake" in err
