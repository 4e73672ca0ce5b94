"""A Ray address is checked for form and reached within a timeout before a sweep writes anything."""

import socket
import time

import pytest

from energymeter.cli import main
from energymeter.validation.records import store
from energymeter.validation.run.config import SweepError
from energymeter.validation.run.ray_address import parse_ray_address, probe


@pytest.mark.parametrize("text,expected", [("auto", (None, None)), ("127.0.0.1:6379", ("127.0.0.1", 6379)),
                                           ("head-node.example.org:10001", ("head-node.example.org", 10001)),
                                           ("[::1]:6379", ("::1", 6379))])
def test_the_forms_ray_documents_are_taken(text, expected):
    address = parse_ray_address(text)
    assert (address.host, address.port) == expected and address.text == text


@pytest.mark.parametrize("text,why", [("nonsense", "needs a port"), ("http://127.0.0.1:8265", "no scheme but ray://"),
                                      ("256.1.1.1:6379", "not a host name or an IP address"),
                                      ("127.0.0.1:0", "not in 1-65535"), ("127.0.0.1:99999", "not in 1-65535"),
                                      ("host:-1", "needs a port"), ("", "not an address"),
                                      ("héad:6379", "not an address"), ("-bad-.org:1", "not a host name"),
                                      ("10.0.0.1:6379/x", "no path"), ("127.0.0.1:1" + "0" * 5000, "needs a port")])
def test_other_addresses_are_refused_with_the_reason(text, why):
    with pytest.raises(SweepError, match=why):
        parse_ray_address(text)


def test_the_ray_client_form_needs_the_client_extra_or_says_so():
    import importlib.util

    if importlib.util.find_spec("grpc") is not None:
        assert parse_ray_address("ray://127.0.0.1:10001").client
    else:
        with pytest.raises(SweepError, match=r"pip install 'ray\[client\]'"):
            parse_ray_address("ray://127.0.0.1:10001")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_listens_fails_at_once_and_one_that_never_answers_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(SweepError, match="nothing listens there"):
        probe(parse_ray_address(f"127.0.0.1:{_free_port()}"), 5.0)
    with socket.socket() as listening:  # a listener whose backlog is full never completes another handshake
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        port = listening.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port), timeout=1)
        try:
            with pytest.raises(SweepError, match="nothing answered within 0.5 s"):
                probe(parse_ray_address(f"127.0.0.1:{port}"), 0.5)
        finally:
            filler.close()
    assert time.monotonic() - start < 10


def test_validate_refuses_a_bad_address_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    for address in ("nonsense", "http://127.0.0.1:8265", "256.1.1.1:6379", f"127.0.0.1:{_free_port()}"):
        assert main(["validate", "--quick", "--executor", "ray", "--ray-address", address, "--ray-timeout-s", "2",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("energymeter validate: --ray-address"), err
        assert not out.exists() or not any(out.iterdir())
    assert main(["validate", "--quick", "--ray-timeout-s", "2", "--out", str(out)]) == 2
    assert "need --executor ray" in capsys.readouterr().err


def test_a_sweep_that_fails_before_its_first_run_leaves_neither_its_manifest_nor_its_lock(tmp_path):
    from energymeter.validation.run.config import SweepConfig
    from energymeter.validation.run.sweep import run_sweep

    class Broken:
        def run(self, config, pending, reference_reps):
            raise SweepError("the executor could not start")
            yield  # a generator, as executors are

    out = tmp_path / "sweep"
    config = SweepConfig(models=("mlp",), datasets=("digits",), lambdas=(0.0, 1e-2), seeds=1, epochs=1, reference_s=0.0,
                         idle_s=0.0, backends=("cpu-model",))
    with pytest.raises(SweepError, match="could not start"):
        run_sweep(config, out, quiet=True, executor=Broken())
    assert not (out / store.SWEEP_FILE).exists() and not (out / store.LOCK_FILE).exists()


def test_the_ray_client_hint_is_given_whenever_grpc_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(SweepError, match=r"pip install 'ray\[client\]'"):
        parse_ray_address("ray://127.0.0.1:10001")
    assert parse_ray_address("127.0.0.1:10001").host == "127.0.0.1"  # the plain form needs no grpc


class _RayThatRefuses:
    """A ``ray`` module whose ``init`` fails as a real one does when the cluster turns the driver away."""

    def __init__(self):
        self.inits = []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.inits.append(kwargs)
        raise ConnectionError("Could not connect to the GCS at 10.0.0.9:6379\nsecond line of Ray's message")


def _sweep_config():
    from energymeter.validation.run.config import SweepConfig

    return SweepConfig(models=("mlp",), datasets=("digits",), lambdas=(0.0, 1e-2), seeds=1, epochs=1,
                       reference_s=0.0, idle_s=0.0, backends=("cpu-model",), inference_design="per-run",
                       training_design="sequential")


def test_ray_init_failing_against_an_address_is_one_sweep_error_and_leaves_no_sweep_behind(monkeypatch, tmp_path):
    import sys

    from energymeter.validation.run.ray_executor import RayExecutor
    from energymeter.validation.run.sweep import run_sweep

    fake = _RayThatRefuses()
    monkeypatch.setitem(sys.modules, "ray", fake)
    out = tmp_path / "sweep"
    with pytest.raises(SweepError) as caught:
        run_sweep(_sweep_config(), out, quiet=True, executor=RayExecutor(address="10.0.0.9:6379"))
    assert str(caught.value) == ("--ray-address 10.0.0.9:6379: Ray could not connect: ConnectionError: Could not "
                                 "connect to the GCS at 10.0.0.9:6379")
    assert len(fake.inits) == 1
    assert not (out / store.SWEEP_FILE).exists() and not (out / store.LOCK_FILE).exists()


def test_ray_init_failing_against_the_local_instance_stops_that_instance_and_is_one_sweep_error(monkeypatch, tmp_path):
    import sys

    from energymeter.validation.run.ray_executor import RayExecutor
    from energymeter.validation.run.sweep import run_sweep

    stopped = []

    class Head:
        address = "127.0.0.1:6390"

        def stop(self):
            stopped.append(True)

    monkeypatch.setitem(sys.modules, "ray", _RayThatRefuses())
    out = tmp_path / "sweep"
    with pytest.raises(SweepError, match="^the local Ray instance did not accept this driver: ConnectionError: "
                                         "Could not connect to the GCS at 10.0.0.9:6379$"):
        run_sweep(_sweep_config(), out, quiet=True, executor=RayExecutor(head=lambda **kwargs: Head()))
    assert stopped == [True]
    assert not (out / store.SWEEP_FILE).exists() and not (out / store.LOCK_FILE).exists()
