"""A real Prometheus server scrapes ``energymeter serve``'s endpoint; its stored counter matches a window's joules.

Needs the ``prometheus`` binary (Debian's ``prometheus`` package; ``.ci/run`` installs it where it can): the
test skips, saying why, where it is absent.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from energymeter import measure
from energymeter.testing import FakePowercap

pytest.importorskip("prometheus_client")
from energymeter.integrations.prometheus import serve  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary on PATH (Debian: apt-get install "
                                "prometheus; .ci/run installs it where apt-get can)")
PACKAGE, DRAM = "cpu:0:package", "cpu:0:dram"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture()
def prometheus(tmp_path):
    """A Prometheus server scraping the endpoint at ``target`` every 200 ms: (start(target) -> api base URL)."""
    procs = []

    def start(target):
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n"
                          f"  - job_name: energymeter\n    static_configs:\n      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "w")
        procs.append((subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                                        f"--storage.tsdb.path={tmp_path / 'data'}",
                                        f"--web.listen-address=127.0.0.1:{port}"],
                                       stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path), log))
        base = f"http://127.0.0.1:{port}"

        def ready():
            try:
                return urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200 or None
            except OSError:
                if procs[-1][0].poll() is not None:
                    raise AssertionError("prometheus exited: " + (tmp_path / "prometheus.log").read_text()[-2000:])
                return None
        wait_for(ready, 60, "prometheus to start")
        return base

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def stored(base, domain):
    """The latest value Prometheus stored for the domain's counter, or None."""
    query = urllib.parse.quote(f'energymeter_energy_joules_total{{domain="{domain}"}}')
    result = get_json(f"{base}/api/v1/query?query={query}")["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_a_prometheus_server_scrapes_the_endpoint_and_its_counter_matches_a_window(tmp_path, prometheus):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, dram=True, energy_uj=3_000_000)
    with serve(["rapl"], port=0, powercap_root=tree.root) as endpoint:
        base = prometheus(f"127.0.0.1:{endpoint.port}")
        before = {d: wait_for(lambda d=d: stored(base, d), 60, f"a first scrape of {d}") for d in (PACKAGE, DRAM)}
        with measure(["rapl"], powercap_root=tree.root) as m:
            for joules in (4.0, 1.5, 2.5):
                tree.set_energy("intel-rapl:0", tree.energy("intel-rapl:0") + round(joules * 1e6))
                tree.set_energy("intel-rapl:0:0", tree.energy("intel-rapl:0:0") + round(joules * 0.2e6))
        expected = {d: before[d] + m.result.energy_j[d] for d in (PACKAGE, DRAM)}
        def settled(domain):  # the counters stand still after the window: a scrape after it reads their sum
            value = stored(base, domain)
            return value if value is not None and abs(value - expected[domain]) < 0.5 else None

        after = {d: wait_for(lambda d=d: settled(d), 60, f"a scrape after the window of {d}") for d in (PACKAGE, DRAM)}
        targets = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
    assert m.result.energy_j[PACKAGE] == pytest.approx(8.0)
    for domain in (PACKAGE, DRAM):
        assert after[domain] - before[domain] == pytest.approx(m.result.energy_j[domain], rel=0.01)
    assert [t["health"] for t in targets] == ["up"]
