import json

import pytest

from energymeter.errors import ProfileError
from energymeter.profiles import cpu_power, load_profile, model_words, names_model, power_limits


def write(tmp_path, data):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return path


def cpu_profile(*models):
    return {"schema_version": 2, "kind": "cpu", "default": {"tdp_w": 85.0, "source": "default"},
            "models": list(models)}


@pytest.mark.parametrize("cpuinfo, tdp_w", [
    ("AMD EPYC 7763 64-Core Processor", 280.0),
    ("Intel(R) Xeon(R) Platinum 8480+", 350.0),
    ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", 270.0),
    ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 150.0),
    ("13th Gen Intel(R) Core(TM) i9-13900K", 125.0),
    ("AMD Ryzen 9 7950X 16-Core Processor", 170.0),
    ("Intel(R) Xeon(R) Platinum 8380H CPU @ 2.90GHz", 32.0),  # a different part: the default (4 W x 8), not the 8380
    ("AMD EPYC 77630", 32.0),
])
def test_bundled_cpu_profile_names_whole_model_words(cpuinfo, tdp_w):
    assert cpu_power(cpuinfo, 8).tdp_w == tdp_w


def test_trademark_marks_and_case_do_not_change_the_match():
    assert model_words("Intel(R) Xeon(R) Gold 6248 CPU") == ["intel", "xeon", "gold", "6248", "cpu"]
    assert names_model(model_words("Xeon Gold 6248"), model_words("INTEL® XEON™ GOLD 6248"))
    assert not names_model(model_words("Xeon Gold"), model_words("Xeon Platinum Gold"))


def test_a_pattern_that_backtracks_exponentially_as_a_regex_matches_in_linear_time(tmp_path):
    path = write(tmp_path, cpu_profile({"model": "(a+)+$", "tdp_w": 1.0, "threads": 1, "source": "user"},
                                       {"model": "a a a a a a a a b", "tdp_w": 2.0, "threads": 1, "source": "user"}))
    import re as real_re

    import energymeter.profiles as profiles

    seen: list[str] = []

    class Recording:  # the module's ``re``, recording every pattern handed to the regex engine
        def __getattr__(self, name):
            attr = getattr(real_re, name)
            if name in ("compile", "search", "match", "fullmatch", "findall", "finditer", "split", "sub"):
                def record(pattern, *args, **kwargs):
                    seen.append(getattr(pattern, "pattern", pattern))
                    return attr(pattern, *args, **kwargs)
                return record
            return attr

    # First on a short string (a regression fails here instead of hanging): the profile's text never
    # reaches a regex engine, so no input can make matching take exponential time.
    profiles.re = Recording()
    try:
        assert cpu_power("aaaa!", 4, path).source == "default"
    finally:
        profiles.re = real_re
    assert not any("(a+)" in str(pattern) for pattern in seen), seen
    hostile = "a" * 200_000 + "!"  # against the regex (a+)+$ this would take 2^200000 steps
    words = " ".join(["a"] * 50_000) + " !"
    assert cpu_power(hostile, 4, path).source == "default"
    assert cpu_power(words, 4, path).source == "default"


def test_a_regular_expression_in_a_cpu_profile_is_refused_with_the_way_forward(tmp_path):
    entry = {"match": "(a+)+$", "tdp_w": 1.0, "threads": 1, "source": "user"}
    with pytest.raises(ProfileError, match="'match' .* is not accepted.*give 'model'"):
        cpu_power("anything", 4, write(tmp_path, cpu_profile(entry)))
    old = dict(cpu_profile(entry), schema_version=1)
    with pytest.raises(ProfileError, match="expected 2.*regular expressions.*exponential"):
        cpu_power("anything", 4, write(tmp_path, old))


def test_a_cpu_profile_entry_without_model_words_is_an_error(tmp_path):
    with pytest.raises(ProfileError, match="needs 'model'"):
        cpu_power("x", 4, write(tmp_path, cpu_profile({"model": "  ", "tdp_w": 1.0, "threads": 1, "source": "s"})))


def test_bundled_power_limits_give_every_rapl_and_gpu_kind_a_ceiling_with_its_source():
    limits = power_limits()
    for kind in ("package", "core", "uncore", "dram", "psys", "gpu"):
        assert limits.for_kind(kind) > 0 and limits.sources[kind]
    assert limits.for_kind("package") == 1500.0 and limits.for_kind("dram") == 1000.0
    assert limits.for_kind("gpu") == 3000.0
    assert limits.for_kind("never-heard-of") == limits.default_max_power_w == 5000.0
    assert limits.step_allowance_s == 1.0 and "burst" in limits.sources["step_allowance_s"]


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["domains"]["package"].update(max_power_w=0), "must be a positive number"),
    (lambda d: d["domains"]["dram"].update(max_power_w=float("nan")), "domains.dram.max_power_w: NaN is not a finite"),
    (lambda d: d["domains"]["gpu"].pop("source"), "needs 'max_power_w' and 'source'"),
    (lambda d: d["step_allowance_s"].update(value=-1), "step_allowance_s"),
    (lambda d: d.pop("default"), "needs a 'default' entry"),
    (lambda d: d.update(kind="cpu"), "expected 'power-limits'"),
])
def test_a_malformed_power_limits_profile_is_a_clear_error(tmp_path, mutate, needle):
    data = load_profile("power-limits", "power-limits")
    mutate(data)
    with pytest.raises(ProfileError, match=needle):
        power_limits(write(tmp_path, data))


# -- hostile profile files (issue 20 part 6): one ProfileError naming the file and field, nothing else -----

def _write_power_limits(tmp_path, text):
    path = tmp_path / "limits.json"
    path.write_text(text)
    return path


def _power_limits_text(**replace):
    import json
    from importlib import resources

    data = json.loads(resources.files("energymeter.hardware_profiles").joinpath("power-limits.json").read_text())
    text = json.dumps(data)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("text, needle", [
    ("[" * 5000 + "]" * 5000, "nested deeper than"),
    ('{"kind": "power-limits", "deep": ' + "[" * 40 + "]" * 40 + "}", "deep.*nested deeper than 32 levels"),
    ('{"kind": "power-limits", "schema_version": ' + "9" * 400 + "}", "schema_version: an integer of 400 digits"),
    ('{"kind": "power-limits", "x": 1e400}', "x: 1e400 is outside a float's range"),
    ('{"kind": "power-limits", "x": NaN}', "x: NaN is not a finite number"),
])
def test_a_hostile_profile_is_one_profile_error_naming_the_place(tmp_path, text, needle):
    from energymeter.profiles import power_limits

    with pytest.raises(ProfileError, match=needle):
        power_limits(_write_power_limits(tmp_path, text))


def test_an_absurd_ceiling_or_allowance_is_refused_with_its_bound(tmp_path):
    import json

    from energymeter.profiles import power_limits

    data = json.loads(_power_limits_text())
    data["step_allowance_s"]["value"] = 1e308
    with pytest.raises(ProfileError, match="step_allowance_s' of 1e\\+308 is above its physical bound of 10"):
        power_limits(_write_power_limits(tmp_path, json.dumps(data)))
    data = json.loads(_power_limits_text())
    data["default"]["max_power_w"] = 1e308
    with pytest.raises(ProfileError, match="max_power_w' of 1e\\+308 is above its physical bound"):
        power_limits(_write_power_limits(tmp_path, json.dumps(data)))


def _cpu_profile(tmp_path, change):
    import json
    from importlib import resources

    cpu = json.loads(resources.files("energymeter.hardware_profiles").joinpath("cpu.json").read_text())
    change(cpu)
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(cpu))
    return path


@pytest.mark.parametrize("change, needle", [
    (lambda cpu: cpu["default"].update(tdp_w_per_thread=1e308), "tdp_w_per_thread' of 1e\\+308 is above its physical "
                                                                "bound of 100"),
    (lambda cpu: cpu["default"].update(tdp_w=1e308), "tdp_w' of 1e\\+308 is above its physical bound of 5000"),
    (lambda cpu: (cpu["default"].pop("tdp_w_per_thread"), cpu["default"].update(tdp_w=1e308)),
     "tdp_w' of 1e\\+308 is above its physical bound of 5000"),
    (lambda cpu: cpu["models"][-1].update(tdp_w=1e308), "models\\[7\\]: 'tdp_w' of 1e\\+308 is above"),
])
def test_an_absurd_cpu_tdp_is_refused_wherever_it_stands(tmp_path, change, needle):
    from energymeter.profiles import cpu_power

    # Beside a per-thread figure, or in an entry this CPU does not match: a hostile figure is refused all the same.
    with pytest.raises(ProfileError, match=needle):
        cpu_power("Unknown CPU", 4, _cpu_profile(tmp_path, change))


def test_a_nan_or_absurd_loihi_cost_is_refused(tmp_path):
    import json
    from importlib import resources

    from energymeter.loihi.profile import load_loihi_profile

    loihi_text = resources.files("energymeter.hardware_profiles").joinpath("loihi1.json").read_text()
    key = next(iter(json.loads(loihi_text)["energy_pj"]))
    data = json.loads(loihi_text)
    path = tmp_path / "loihi.json"
    path.write_text(json.dumps(data).replace(f'"{key}": {json.dumps(data["energy_pj"][key])}', f'"{key}": NaN'))
    with pytest.raises(ProfileError, match=f"energy_pj.{key}: NaN is not a finite number"):
        load_loihi_profile(path)
    data["energy_pj"][key] = 1e12
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="above its physical bound"):
        load_loihi_profile(path)


@pytest.mark.parametrize("place", ["default.max_power_w", "step_allowance_s"])
def test_a_400_digit_number_at_a_numeric_field_is_one_profile_error_naming_the_field(tmp_path, place):
    import json

    from energymeter.profiles import power_limits

    limits = json.loads(_bundled_text("power-limits"))
    *parents, field = place.split(".")
    entry = limits
    for parent in parents:
        entry = entry[parent]
    entry[field] = "HUGE"
    text = json.dumps(limits).replace('"HUGE"', "9" * 400)
    with pytest.raises(ProfileError, match=f"{place}: an integer of 400 digits"):
        power_limits(_write_power_limits(tmp_path, text))


def _bundled_text(name):
    from importlib import resources

    return resources.files("energymeter.hardware_profiles").joinpath(f"{name}.json").read_text()


def _load_power_limits(path):
    from energymeter.profiles import PowerLimits, power_limits

    profile = power_limits(path)
    assert isinstance(profile, PowerLimits)
    return profile


def _load_cpu_profile(path):
    from energymeter.profiles import CpuPower

    profile = cpu_power("Intel(R) Xeon(R) Platinum 8480+", 4, path)
    assert isinstance(profile, CpuPower)
    return profile


def _load_loihi(path):
    from energymeter.loihi.profile import LoihiProfile, load_loihi_profile

    profile = load_loihi_profile(path)
    assert isinstance(profile, LoihiProfile)
    return profile


def _leaf_paths(value, path=()):
    """Every place in parsed JSON that holds a value, as a tuple of keys and indices (the root included)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, (*path, index))


#: Raw JSON text a hostile profile puts in a place: numbers beyond a float, beyond int()'s digit limit, non-finite
#: constants, deep nesting, absurd magnitudes, wrong types.
HOSTILE_VALUES = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400, "-" + "9" * 5000, "1e308", "-1e308",
                  "0", "-0.0", "-1", "5e-324", "[" * 5000 + "]" * 5000, "{" + '"a": {' * 40 + "}" * 41, "true", "null",
                  '""', '"1e308"', "[]", "{}", '"\\ud800"')


def _finite_numbers(value):
    """Every number in a loaded profile (dataclass fields, mappings, sequences), for the finiteness check."""
    import dataclasses
    import math

    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        assert math.isfinite(value), value
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            _finite_numbers(getattr(value, field.name))
    elif isinstance(value, dict) or type(value).__name__ == "mappingproxy":
        for item in value.values():
            _finite_numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _finite_numbers(item)


@pytest.mark.parametrize("bundled, load", [("power-limits", _load_power_limits), ("cpu", _load_cpu_profile),
                                           ("loihi1", _load_loihi), ("loihi1-calibrated", _load_loihi)])
def test_any_hostile_value_in_any_place_gives_a_finite_profile_or_one_profile_error(tmp_path, bundled, load):
    import json

    data = json.loads(_bundled_text(bundled))
    marker = "__energymeter_hostile__"
    # Every place of the bundled file (each field, each entry, the whole file) holding each hostile value's raw
    # text, all of them (286 to 1,056 files a profile): a profile whose every number is finite, or a
    # ProfileError, never another exception.
    cases = 0
    for place in _leaf_paths(data):
        for hostile in HOSTILE_VALUES:
            copy = json.loads(json.dumps(data))
            if place:
                parent = copy
                for step in place[:-1]:
                    parent = parent[step]
                parent[place[-1]] = marker
                text = json.dumps(copy).replace(json.dumps(marker), hostile)
            else:
                text = hostile
            try:
                profile = load(_write_power_limits(tmp_path, text))
            except ProfileError as exc:
                assert str(exc)
            except Exception as exc:  # noqa: BLE001 - the failure names the place and the value
                raise AssertionError(f"{place} = {hostile[:40]!r}: {type(exc).__name__}: {exc}") from exc
            else:
                try:
                    _finite_numbers(profile)
                except AssertionError as exc:
                    raise AssertionError(f"{place} = {hostile[:40]!r} loaded a non-finite number: {exc}") from exc
            cases += 1
    assert cases == len(list(_leaf_paths(data))) * len(HOSTILE_VALUES)


#: A longer run: ENERGYMETER_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_profiles.py -k any_profile_text
@pytest.mark.parametrize("bundled, load", [("power-limits", _load_power_limits), ("cpu", _load_cpu_profile),
                                           ("loihi1", _load_loihi), ("loihi1-calibrated", _load_loihi)])
def test_any_profile_text_gives_a_profile_or_one_profile_error(tmp_path_factory, bundled, load):
    hypothesis = pytest.importorskip("hypothesis")
    import os
    import string

    from hypothesis import HealthCheck, given, settings, strategies as st

    base = _bundled_text(bundled)
    examples = int(os.environ.get("ENERGYMETER_FUZZ_EXAMPLES", "100"))

    # A splice of printable text into the bundled file: most results are broken JSON or a broken value,
    # some still load; every one must be a profile or a ProfileError, never another exception.
    @settings(max_examples=examples, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, len(base)), st.integers(0, 30), st.text(alphabet=string.printable, max_size=60))
    def check(start, width, insert):
        directory = tmp_path_factory.mktemp("profile-fuzz")
        path = _write_power_limits(directory, base[:start] + insert + base[start + width:])
        try:
            load(path)
        except ProfileError as exc:
            assert str(exc)

    assert hypothesis
    check()


def test_an_unknown_cpu_gets_codecarbons_four_watts_per_thread_with_the_source_cited():
    from energymeter.profiles import cpu_power

    power = cpu_power("Some Unknown CPU 9000", 2)
    assert power.tdp_w == 8.0 and power.threads == 2 and power.power_per_thread_w == 4.0
    assert "DEFAULT_POWER_PER_CORE = 4" in power.source and "codecarbon 3.3.2" in power.source
    assert cpu_power("Some Unknown CPU 9000", 64).tdp_w == 256.0
