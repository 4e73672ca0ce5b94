"""The torch simulator's lava mode gives exactly lava-nc's spikes (lava runs in its own Python 3.10)."""

import pytest

torch = pytest.importorskip("torch")

from energymeter.loihi import LavaLif  # noqa: E402
from energymeter.loihi.lava_check import (LavaUnavailable, find_lava_python, lava_spikes, random_network,  # noqa: E402
                                          random_spikes, torch_spikes)


@pytest.fixture(scope="module")
def lava_python():
    try:
        return find_lava_python()
    except LavaUnavailable as exc:
        pytest.skip(f"lava-nc cross-check skipped: {exc}")


CASES = [
    ([4, 3], LavaLif(du=1.0, dv=0.0, vth=1.0), 0.5),   # integrate-and-fire: no decay
    ([6, 5, 3], LavaLif(du=0.5, dv=0.1, vth=0.8), 0.4),  # current and voltage decay
    ([8, 6, 4, 2], LavaLif(du=0.2, dv=0.05, vth=1.0), 0.3),
    ([10, 7, 5], LavaLif(du=1.0, dv=0.3, vth=0.5), 0.2),
]


@pytest.mark.parametrize("index", range(len(CASES)))
def test_spike_counts_match_lava_per_layer_and_timestep(lava_python, index):
    sizes, lif, rate = CASES[index]
    network = random_network(sizes, seed=index, lif=lif)
    spikes = random_spikes(3, 25, sizes[0], rate, seed=index)
    ours = torch_spikes(network, spikes)
    theirs, _ = lava_spikes(network, spikes, python=lava_python, timeout_s=300)
    assert ours == theirs
    per_layer = [sum(sum(layer) for layer in (sample[i] for sample in ours)) for i in range(len(sizes) - 1)]
    assert all(total > 0 for total in per_layer), "a silent layer would make the comparison vacuous"


def test_missing_interpreter_is_a_clear_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("ENERGYMETER_LAVA_PYTHON", str(tmp_path / "no-python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(LavaUnavailable, match="no Python 3.10 with lava-nc found"):
        find_lava_python()
