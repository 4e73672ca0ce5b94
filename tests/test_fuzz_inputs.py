"""Fuzzing that stays (issue 20 part 9): the CLI's argument types and the powercap parser, on inputs nobody
picked. Each asserts one clear error or a valid result, never another exception, within a bounded time.
A longer run: ENERGYMETER_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz_inputs.py"""

import argparse
import os
import shutil
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from energymeter import cliargs  # noqa: E402
from energymeter.backends.base import BackendStatus, Reading  # noqa: E402
from energymeter.backends.rapl import RaplBackend  # noqa: E402

EXAMPLES = int(os.environ.get("ENERGYMETER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, suppress_health_check=[HealthCheck.too_slow])

_text = st.one_of(st.text(max_size=50), st.from_regex(r"-?[0-9]{1,6000}", fullmatch=True),
                  st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_000", " 5 ", "", "\x00", "٣"]))


@FUZZ
@given(_text)
def test_every_cli_argument_type_gives_a_value_or_an_argument_error(text):
    from energymeter.validation import cli as validation_cli

    types = [cliargs.positive_int, cliargs.seed, cliargs.finite, cliargs.nonnegative, cliargs.positive,
             cliargs.nonempty_path, validation_cli._lambdas, validation_cli._names, validation_cli._sesoi]
    for convert in types:
        try:
            convert(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc)


_bytes = st.one_of(st.binary(max_size=40), st.from_regex(rb"-?[0-9]{1,30}\n?", fullmatch=True),
                   st.sampled_from([b"package-0\n", b"dram\n", b"core\n", b"psys\n", b"\xff\xfe\n", b"",
                                    b"262143328850\n", b"1_000_000_500\n", b" 12 \n", b"9" * 5000]))
_entry = st.one_of(st.sampled_from(["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl-mmio:0",
                                    "intel-rapl:0:1"]),
                   st.from_regex(r"intel-rapl:[0-9]{1,240}(:[0-9]{1,3})?", fullmatch=True))  # NAME_MAX is 255


@FUZZ
@given(st.lists(st.tuples(_entry, _bytes, _bytes, _bytes), min_size=1, max_size=4))
def test_any_powercap_tree_probes_to_a_status_and_reads_to_a_reading(zones):
    root = tempfile.mkdtemp(prefix="energymeter-fuzz-")
    try:
        for entry, name, max_range, energy in zones:
            path = os.path.join(root, entry)
            os.makedirs(path, exist_ok=True)
            for file, data in (("name", name), ("max_energy_range_uj", max_range), ("energy_uj", energy)):
                with open(os.path.join(path, file), "wb") as handle:
                    handle.write(data)
        backend = RaplBackend(powercap_root=root)
        status = backend.probe()
        assert isinstance(status, BackendStatus) and status.reason
        if status.available:
            session = backend.open()
            try:
                for read in (session.read, session.read_fast, session.read):
                    assert isinstance(read(), (Reading, tuple))
            finally:
                session.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
