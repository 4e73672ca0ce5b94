"""The prepared GPU check (docs/hardware-checks/gpu_check.py) run end to end against a fake NVML.

The fake GPU charges each GEMM an energy computed from its left operand by a rule the test picks, so
the data-dependent table must report ratios the test can compute; a swapped operand, a miscounted
GEMM, a window that loses its charges or a ratio taken the wrong way round changes them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from energymeter import Measurement  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "hardware-checks" / "gpu_check.py"
CLASSES = ("dense-random", "lambda0-acts", "lambda1e-2-acts", "zeros")
FAKE_ARGS = ["--fake", "--budget-s", "60", "--seconds", "0.3", "--size", "64", "--repeats", "2",
             "--gemm-size", "64", "--window-s", "0.15", "--rounds", "3", "--dataset", "digits", "--epochs", "1",
             "--validate-reserve-s", "0"]
NUMBER = r"[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?"
ROW = re.compile(rf"^(?P<name>{'|'.join(map(re.escape, CLASSES))})\s+(?P<zero>{NUMBER})\s+(?P<msq>{NUMBER})\s+"
                 rf"(?P<n>\d+)\s+(?P<j>{NUMBER})\s+\[(?P<jlo>{NUMBER}), (?P<jhi>{NUMBER})\]\s+(?P<r>{NUMBER})\s+"
                 rf"\[(?P<rlo>{NUMBER}), (?P<rhi>{NUMBER})\]\s+(?P<pairs>\d+)\s", re.MULTILINE)


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


@pytest.fixture(scope="module")
def fake_run_output():
    module = load_script()
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = module.main(FAKE_ARGS, fake_energy_mj_per_gemm=mj_per_gemm)
    return status, buffer.getvalue()


def table_rows(out: str) -> dict[str, dict[str, float]]:
    rows = {}
    for match in ROW.finditer(out):
        rows[match["name"]] = {k: float(v) for k, v in match.groupdict().items() if k != "name"}
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


def test_data_dependent_table_reports_the_energy_the_fake_gpu_charged_each_class(fake_run_output):
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
    assert rows["zeros"]["zero"] == 1.0 and rows["zeros"]["msq"] == 0.0
    assert rows["zeros"]["r"] == pytest.approx(0.1, rel=0.01)
    # The energy penalty did what it is for: sparser, smaller first-layer activations than at lambda = 0.
    assert rows["lambda1e-2-acts"]["zero"] > rows["lambda0-acts"]["zero"] > 0.0
    assert 0.0 < rows["lambda1e-2-acts"]["msq"] < rows["lambda0-acts"]["msq"]
    line = re.search(rf"E per element x({NUMBER}); J per GEMM \(measured\) x({NUMBER})", out)
    assert float(line[1]) == pytest.approx(rows["lambda1e-2-acts"]["msq"] / rows["lambda0-acts"]["msq"], rel=0.01)
    assert float(line[2]) == pytest.approx(rows["lambda1e-2-acts"]["r"] / rows["lambda0-acts"]["r"], rel=0.01)
    assert "cost less energy per GEMM than the lambda = 0 ones" in out  # the fake charges zeros less


def test_fake_run_skips_validate_and_prints_the_command_a_gpu_run_executes(fake_run_output):
    _, out = fake_run_output
    section = out.split("== energymeter validate --device cuda:0 --quick", 1)[1]
    assert "skipped in --fake mode" in section
    assert re.search(r"-m energymeter validate --device cuda:0 --quick --quiet --out <tmpdir>", section)


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


def test_windows_rotate_the_class_order_and_leave_out_failed_windows_with_their_reason():
    module = load_script()
    operands = {name: torch.ones(8, 8) for name in "abc"}
    meter = ChargedMeter(fail={4})  # the second round's second window: class c
    results, rounds = module.run_windows(meter, operands, torch.ones(8, 8), "cpu", 0.02, 3, time.monotonic() + 60,
                                         lambda uuid: (None, None), meter.charge)
    assert rounds == 3
    assert meter.order == list("abc" "bca" "cab")
    assert results["c"].failed == ["NVML: Timeout"] and len(results["c"].j_per_gemm) == 2
    assert sorted(results["c"].by_round) == [0, 2]
    assert results["a"].j_per_gemm == pytest.approx([0.004] * 3)
    ratio = module.ratio_to(results, "c", "a")
    assert ratio.n == 2 and ratio.estimate == pytest.approx(0.25)


def test_rounds_stop_when_the_next_one_would_end_after_the_budget():
    module = load_script()
    operands = {name: torch.ones(8, 8) for name in "abc"}
    meter = ChargedMeter()
    ticks = iter(range(10**6))

    def clock() -> float:  # a fake clock: every reading is 0.1 s after the previous, whatever the machine does
        return next(ticks) * 0.1

    # Rounds read the clock at the check, at their start and at their end: a round "takes" 0.1 s, and the
    # next one runs only while the check time + max(last round, 3 windows of 0.05 s) < 1.0. Checks fall at
    # 0.0, 0.3, 0.6 (0.6 + 0.15 < 1.0) and 0.9 (0.9 + 0.15 >= 1.0): exactly 3 rounds.
    results, rounds = module.run_windows(meter, operands, torch.ones(8, 8), "cpu", 0.05, 1000, 1.0,
                                         lambda uuid: (None, None), meter.charge, clock=clock)
    assert rounds == 3
    assert len(meter.order) == 3 * rounds


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine this would run the whole check")
def test_without_a_cuda_device_and_without_fake_the_check_exits_2_with_one_line(capsys):
    module = load_script()
    assert module.main(["--budget-s", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err and "--fake" in err
