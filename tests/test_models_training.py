import pytest

torch = pytest.importorskip("torch")

from energymeter import Meter  # noqa: E402
from energymeter.cli import main  # noqa: E402
from energymeter.models import build, load_dataset, train  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def run(digits, lam, seed=0, **kw):
    model = build("mlp", digits.in_shape, 10, seed=seed)
    return train(model, digits, lam=lam, epochs=kw.pop("epochs", 4), seed=seed, **kw)


def test_regularisation_lowers_activation_energy_for_a_fixed_seed(digits):
    plain, regularised = run(digits, 0.0), run(digits, 1e-2)
    assert regularised.activation_energy < plain.activation_energy / 5
    assert regularised.activation_sparsity > plain.activation_sparsity


def test_same_seed_gives_the_same_result_on_cpu(digits):
    a, b = run(digits, 1e-3, seed=3), run(digits, 1e-3, seed=3)
    assert a.history == b.history
    assert a.test_accuracy == b.test_accuracy and a.activation_energy == b.activation_energy


def test_history_has_one_entry_per_epoch_with_loss_terms(digits):
    result = run(digits, 1e-3, epochs=3)
    assert [h.epoch for h in result.history] == [1, 2, 3]
    h = result.history[-1]
    assert h.loss == pytest.approx(h.ce + 1e-3 * h.activation_energy, rel=1e-6)
    assert 0.5 < result.test_accuracy <= 1.0


def test_a_meter_measures_the_training_run(digits):
    meter = Meter(["flops", "cpu-model"])
    result = run(digits, 0.0, epochs=1, meter=meter)
    m = result.measurement
    assert m is not None and m.name == "train"
    # 1,438 samples through 64-256-256-10: forward 2*(64*256+256*256+256*10) per sample, backward about 2x.
    forward = 2 * 1438 * (64 * 256 + 256 * 256 + 256 * 10)
    assert 2.5 * forward < m.flops < 3.1 * forward
    assert m.provenance["cpu:model"] == "modeled"


def test_l0_with_positive_lambda_is_refused(digits):
    with pytest.raises(ValueError, match="no gradient"):
        run(digits, 1e-2, activation_energy="l0")


def test_train_cli_prints_json(capsys):
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--lam", "1e-3", "--json", "--backend", "flops"])
    out = capsys.readouterr().out
    assert code == 0
    import json

    data = json.loads(out)
    assert data["lam"] == 1e-3 and data["measurement"]["flops"] > 0


@pytest.mark.parametrize("argv, needle", [
    (["train", "--model", "resnet"], "unknown model 'resnet'"),
    (["train", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--lam", "-1"], "must be >= 0"),
    (["train", "--lam", "nan"], "must be a finite number"),
    (["train", "--lam", "inf"], "must be a finite number"),
    (["train", "--lr", "-1"], "must be positive"),
    (["train", "--lr", "nan"], "must be a finite number"),
    (["train", "--epochs", "0"], "must be at least 1"),
    (["train", "--dataset", "mnist"], "needs root=DIR"),
])
def test_train_cli_bad_input_exits_2_with_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
