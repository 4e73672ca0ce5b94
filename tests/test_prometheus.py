"""``energymeter serve`` / ``energymeter.integrations.prometheus.serve``: counters and gauges a Prometheus scrapes."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from energymeter import Meter, measure
from energymeter.testing import FakePowercap
from steady_power import WATTS, SteadyPower

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from energymeter.integrations.prometheus import serve  # noqa: E402

PACKAGE, DRAM = "cpu:0:package", "cpu:0:dram"


def scrape(url):
    """Sample name -> {domain: value}, read by prometheus_client's own parser from a real HTTP scrape."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels["domain"]] = sample.value
    return out


@pytest.fixture()
def tree(tmp_path):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, dram=True, energy_uj=7_000_000)
    return tree


def add_j(tree, zone, joules):
    tree.set_energy(zone, tree.energy(zone) + round(joules * 1e6))


def test_the_scraped_counter_grows_by_a_measure_windows_joules_over_the_same_interval(tree):
    with serve(["rapl"], port=0, powercap_root=tree.root) as endpoint:
        before = scrape(endpoint.url)["energymeter_energy_joules_total"]
        with measure(["rapl"], powercap_root=tree.root) as m:
            for _ in range(3):
                add_j(tree, "intel-rapl:0", 2.5)
                add_j(tree, "intel-rapl:0:0", 0.75)
                time.sleep(0.01)
        after = scrape(endpoint.url)["energymeter_energy_joules_total"]
    assert m.result.energy_j[PACKAGE] == pytest.approx(7.5)
    for domain in (PACKAGE, DRAM):
        assert after[domain] - before[domain] == pytest.approx(m.result.energy_j[domain], rel=0.01)


def test_the_counter_keeps_accumulating_across_counter_wraps(tmp_path):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, energy_uj=900_000_000, max_range_uj=1_000_000_000)  # a 1000 J range
    with serve(["rapl"], port=0, powercap_root=tree.root, max_power_w=5000) as endpoint:
        before = scrape(endpoint.url)["energymeter_energy_joules_total"][PACKAGE]
        # +100 J a step (well inside the 5 kW ceiling over one poll, however late the poller runs on a busy
        # host): the counter wraps twice, and the session's poller folds the wraps in.
        for _ in range(20):
            tree.set_energy("intel-rapl:0", (tree.energy("intel-rapl:0") + 100_000_000) % 1_000_000_000)
            time.sleep(0.05)
        after = scrape(endpoint.url)
    assert after["energymeter_energy_joules_total"][PACKAGE] - before == pytest.approx(2000.0)
    assert after["energymeter_domain_up"][PACKAGE] == 1.0


def test_the_power_gauge_reads_the_writers_watts(tmp_path):
    steady = SteadyPower(tmp_path / "powercap")
    with steady, serve(["rapl"], port=0, powercap_root=steady.tree.root, power_period_s=0.2) as endpoint:
        time.sleep(0.5)
        power = scrape(endpoint.url)["energymeter_power_watts"]
    steady.close()
    assert power[PACKAGE] == pytest.approx(WATTS["intel-rapl:0"], rel=0.1)
    assert power[DRAM] == pytest.approx(WATTS["intel-rapl:0:0"], rel=0.1)


def test_labels_carry_provenance_and_device_and_a_failed_domain_is_down_without_a_counter(tree):
    with serve(["rapl"], port=0, powercap_root=tree.root) as endpoint:
        text = urllib.request.urlopen(endpoint.url, timeout=10).read().decode()
        (tree.root / "intel-rapl:0:0" / "energy_uj").write_text("garbage\n")
        broken = scrape(endpoint.url)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["energymeter_energy_joules"].type == "counter"
    assert families["energymeter_power_watts"].type == "gauge"
    (sample,) = [s for s in families["energymeter_energy_joules"].samples if s.labels["domain"] == PACKAGE]
    assert sample.labels == {"domain": PACKAGE, "provenance": "measured", "device": str(tree.root / "intel-rapl:0")}
    assert DRAM not in broken["energymeter_energy_joules_total"]
    assert broken["energymeter_domain_up"] == {PACKAGE: 1.0, DRAM: 0.0}


def test_it_listens_on_loopback_by_default_and_stops_listening_when_stopped(tree):
    endpoint = serve(["rapl"], port=0, powercap_root=tree.root)
    assert endpoint.host == "127.0.0.1" and endpoint.url.startswith("http://127.0.0.1:")
    assert endpoint._server.server_address[0] == "127.0.0.1"
    assert endpoint.meter.domains.keys() == {PACKAGE, DRAM}
    endpoint.stop()
    endpoint.stop()  # idempotent
    assert endpoint.meter._closed
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=2)


def test_a_given_meter_is_read_and_left_open(tree):
    with Meter(["rapl"], powercap_root=tree.root) as meter:
        with serve(meter=meter, port=0) as endpoint:
            add_j(tree, "intel-rapl:0", 1.0)
            assert scrape(endpoint.url)["energymeter_energy_joules_total"][PACKAGE] == pytest.approx(1.0)
        assert not meter._closed and meter.idle
        with pytest.raises(TypeError):
            serve(["rapl"], meter=meter)


@pytest.mark.parametrize("kwargs", [{"port": -1}, {"port": 70000}, {"port": "80"}, {"power_period_s": 0}])
def test_bad_arguments_are_refused_before_anything_opens(kwargs):
    with pytest.raises(ValueError):
        serve(["cpu-model"], **kwargs)


def test_importing_energymeter_imports_no_prometheus_ipython_or_matplotlib():
    code = ("import sys, energymeter, energymeter.integrations, energymeter.timeline\n"
            "print(sorted(m for m in ('prometheus_client', 'IPython', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]" and proc.stderr == ""


def start_cli(*argv):
    proc = subprocess.Popen([sys.executable, "-m", "energymeter", "serve", *argv], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    return proc, line


def test_energymeter_serve_prints_its_address_serves_and_exits_0_on_sigterm():
    proc, line = start_cli("--backend", "cpu-model", "--port", "0", "--power-period-s", "0.1")
    try:
        match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
        assert match, line
        time.sleep(0.3)
        scraped = scrape(match.group(1))
        assert "cpu:model" in scraped["energymeter_energy_joules_total"]
        assert scraped["energymeter_domain_up"] == {"cpu:model": 1.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == ""


@pytest.mark.parametrize("argv, needle", [
    (["--backend", "flops"], "has no energy to serve"),
    (["--backend", "nope"], "nope"),
    (["--port", "99999"], "must be from 0 to 65535"),
    (["--power-period-s", "0"], "must be positive"),
])
def test_energymeter_serve_bad_input_is_one_line_and_exit_2(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "energymeter", "serve", *argv], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_energymeter_serve_on_a_port_in_use_is_one_line_and_exit_2(tree):
    with serve(["rapl"], port=0, powercap_root=tree.root) as endpoint:
        proc = subprocess.run([sys.executable, "-m", "energymeter", "serve", "--backend", "cpu-model", "--port",
                               str(endpoint.port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_energymeter_serve_without_prometheus_client_names_the_extra(capsys, monkeypatch):
    from energymeter.cli import main

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # an import of it fails as if it were absent
    assert main(["serve", "--backend", "cpu-model", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "needs prometheus_client" in err and "pip install 'energymeter[prometheus]'" in err
    assert len(err.strip().splitlines()) == 1
