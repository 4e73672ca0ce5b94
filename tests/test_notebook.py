"""Notebooks: ``Measurement`` and ``Analysis`` render as escaped HTML; ``%load_ext energymeter`` and ``%%measure``."""

import pytest

from energymeter import Measurement, Meter
from energymeter.testing import FakePowercap

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402


@pytest.fixture()
def shell(tmp_path_factory, monkeypatch):
    if not InteractiveShell.initialized():  # IPython's history goes under the test's directory, never to ~
        monkeypatch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database: nothing to write at exit
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "energymeter")
    yield ip
    for name in ("_measurement", "kept", "x", "m", "tree"):
        ip.user_ns.pop(name, None)


def test_a_measurement_renders_as_html_with_every_string_escaped():
    m = Measurement("<script>alert(1)</script>", 0.5, {"cpu:model": 1.25, "loihi:sim": 0.5},
                    {"cpu:model": "modeled", "loihi:sim": "modeled"}, warnings=("a <b>bold</b> claim",),
                    kinds={"loihi:sim": "simulator"})
    page = m._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in page
    assert "1.250000" in page and "modeled" in page and "not in total" in page
    assert page.count("<tr>") == 1 + 3  # header, two domains, the total


def test_a_measurement_with_a_timeline_says_how_many_points_and_the_peak():
    m = Measurement("w", 1.0, {"cpu:model": 2.0}, {"cpu:model": "modeled"},
                    timeline=[(0.5, {"cpu:model": 1.0}), (1.0, {"cpu:model": 3.0})])
    assert "timeline: 2 points over 1.000 s; peak power cpu:model 3.00 W" in m._repr_html_()


def test_an_analysis_renders_its_headline_and_claims_as_escaped_html():
    from energymeter.validation.analysis.analysis import analyse
    from test_analysis_and_report import fixture

    a = analyse(fixture(lambda e, rng: 2.0 * e))
    page = a._repr_html_()
    assert a.headline.split(":")[0] in page
    assert page.count("<tr>") == 1 + len(a.claims) and len(a.claims) > 0
    assert all(c.verdict in page for c in a.claims)
    assert "<script" not in page


def test_the_cell_magic_runs_the_cell_and_prints_the_fake_trees_joules(shell, tmp_path, capsys):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0)
    shell.user_ns["tree"] = tree
    shell.user_ns["m"] = meter = Meter(["rapl"], powercap_root=tree.root)
    try:
        shell.run_cell_magic("measure", "--meter m -o kept",
                             "tree.set_energy('intel-rapl:0', 4_250_000)\nx = 6 * 7")
    finally:
        meter.close()
    out = capsys.readouterr().out
    assert "cpu:0:package" in out and "4.250000 J" in out and "measured" in out
    assert shell.user_ns["x"] == 42
    assert shell.user_ns["kept"] is shell.user_ns["_measurement"]
    assert shell.user_ns["kept"].energy_j == {"cpu:0:package": 4.25}


def test_the_cell_magic_on_a_named_backend_and_a_cell_that_raises(shell, capsys):
    result = shell.run_cell("%%measure cpu-model\nx = sum(range(10**5))\nraise ValueError('boom')")
    out = capsys.readouterr().out
    assert isinstance(result.error_in_exec, ValueError)
    assert shell.user_ns["x"] == sum(range(10**5))
    assert "cpu:model" in out and "modeled" in out
    assert shell.user_ns["_measurement"].name == "cell"


@pytest.mark.parametrize("line, needle", [("nope", "unknown backend"), ("flops", "counts work, not energy"),
                                          ("-o", "needs a variable name"), ("--frob", "unknown option"),
                                          ("--meter missing", "no energymeter Meter"),
                                          ("cpu-model --meter m", "not both")])
def test_bad_magic_input_is_one_usage_line_and_the_cell_does_not_run(shell, capsys, line, needle):
    shell.run_cell(f"%%measure {line}\nx = 1")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "UsageError" in text and needle in text
    assert "Traceback" not in text
    assert "x" not in shell.user_ns
