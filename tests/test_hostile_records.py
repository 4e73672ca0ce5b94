"""One hostile line of results.jsonl fails that line alone (issue 20 part 1): reported by number, skipped,
never fatal to ``report`` or ``--resume``; and a property test of the reader on lines nobody picked."""

import json
import os
import string

import pytest

from energymeter.validation.records import store
from energymeter.validation.records.json_line import MAX_DEPTH, parse_line
from energymeter.validation.records.record import RecordError, RunRecord
from test_record_and_store import record


def good_line(**changes) -> str:
    data = {**record(seed=7).to_dict(), **changes}
    return json.dumps(data)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE = {
    "deeply nested value": good_line().replace('"host": ""', f'"host": {_nested(5000)}'),
    "a number beyond a float's range": good_line().replace('"activation_energy": 100.0', '"activation_energy": 1e400'),
    "a 400-digit integer": good_line().replace('"seed": 7', '"seed": ' + "9" * 400),
    "Infinity as activation_energy": good_line().replace('"activation_energy": 100.0', '"activation_energy": Infinity'),
    "NaN as an energy": good_line().replace('"cpu:0:package": 10.0', '"cpu:0:package": NaN', 1),
    "a seed of 1.5": good_line().replace('"seed": 7', '"seed": 1.5'),
    "a string where a number goes": good_line().replace('"activation_energy": 100.0', '"activation_energy": "NaN"'),
    "a list where an object goes": good_line().replace('"inference": {', '"inference": [{', 1),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_line_is_reported_by_number_and_the_others_are_read(tmp_path, name):
    line = HOSTILE[name]
    assert line != good_line(), "the fixture did not plant the fault"
    store.append_record(tmp_path, record(seed=0))
    with open(tmp_path / store.RESULTS_FILE, "a") as handle:
        handle.write(line + "\n")
    store.append_record(tmp_path, record(seed=1))
    records, problems = store.read_records(tmp_path)
    assert [r.seed for r in records] == [0, 1]
    assert [p.line for p in problems] == [2] and problems[0].reason


def test_the_refusals_name_the_field_and_the_limit():
    with pytest.raises(RecordError, match=r"activation_energy: Infinity is not a finite number"):
        parse_line(HOSTILE["Infinity as activation_energy"])
    with pytest.raises(RecordError, match=r"inference.measurement.energy_j.cpu:0:package: NaN is not a finite"):
        parse_line(HOSTILE["NaN as an energy"])
    with pytest.raises(RecordError, match=r"seed: an integer of 400 digits"):
        parse_line(HOSTILE["a 400-digit integer"])
    with pytest.raises(RecordError, match=r"activation_energy: 1e400 is outside a float's range"):
        parse_line(HOSTILE["a number beyond a float's range"])
    with pytest.raises(RecordError, match=r"nested deeper than"):
        parse_line(HOSTILE["deeply nested value"])
    with pytest.raises(RecordError, match=rf"host.*nested deeper than {MAX_DEPTH} levels"):
        parse_line(good_line().replace('"host": ""', f'"host": {_nested(MAX_DEPTH + 2)}'))
    with pytest.raises(RecordError, match=r"seed: 1.5 is not a whole number"):
        RunRecord.from_dict(json.loads(HOSTILE["a seed of 1.5"]))
    assert RunRecord.from_dict(json.loads(good_line(seed=3.0))).seed == 3  # a float with no fraction is whole


def test_report_and_resume_get_past_every_hostile_line(tmp_path, capsys):
    from energymeter.cli import main
    from energymeter.validation.run.config import SweepConfig
    from energymeter.validation.run.sweep import run_sweep
    from test_validation import QUICK

    config = SweepConfig(**QUICK)
    outcome = run_sweep(config, tmp_path, quiet=True)
    assert outcome.ran == 4
    results = tmp_path / store.RESULTS_FILE
    lines = results.read_text().splitlines(keepends=True)
    lost = json.loads(lines[1])["key"]
    # The second run's line is replaced by every hostile form at once (one after another).
    hostile = [HOSTILE[name] for name in sorted(HOSTILE)]
    results.write_text(lines[0] + "\n".join(hostile) + "\n" + "".join(lines[2:]))
    assert main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "line 2" in err and f"line {len(hostile) + 1}" in err
    resumed = run_sweep(config, tmp_path, resume=True, quiet=True)
    assert resumed.skipped == 3 and resumed.ran == 1  # the run whose line was lost is run again, once
    records, problems = store.read_records(tmp_path)
    assert sorted(r.key for r in records) == sorted(json.loads(line)["key"] for line in lines)  # each once
    assert lost in {r.key for r in records} and len(problems) == len(hostile)
    assert main(["report", str(tmp_path)]) == 0


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_json_text = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=400)  # one line


@st.composite
def mutated_lines(draw):
    """A real record's line with a random slice replaced by random text, or random JSON values put in a field."""
    line = good_line()
    if draw(st.booleans()):
        start = draw(st.integers(0, len(line)))
        end = draw(st.integers(start, min(len(line), start + 40)))
        return line[:start] + draw(_json_text) + line[end:]
    data = json.loads(line)
    key = draw(st.sampled_from(sorted(data)))
    data[key] = draw(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                                  lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                              inner, max_size=4),
                                  max_leaves=20))
    return json.dumps(data)


#: A longer run: ENERGYMETER_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_hostile_records.py -k any_line
FUZZ_EXAMPLES = int(os.environ.get("ENERGYMETER_FUZZ_EXAMPLES", "300"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated_lines())
def test_any_line_gives_a_record_or_one_problem_and_nothing_else(tmp_path_factory, line):
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / store.RESULTS_FILE).write_text(line + "\n")
    records, problems = store.read_records(directory)  # never raises
    assert len(records) + len(problems) == 1
    if problems:
        assert problems[0].line == 1 and problems[0].reason
