"""energymeter.integrations.lightning: a real Lightning fit on CPU over a fake powercap tree, read back from the
CSVLogger's metrics.csv; two gloo ranks under Lightning's ddp strategy."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training_hardware import DRAM_J, PACKAGE_J, STEP_J, build_tree

REPO = Path(__file__).resolve().parent.parent
#: FLOPs of one sample through TinyModule (784-32-10): forward 2 x (784 x 32 + 32 x 10); backward the weight
#: gradients of both layers (as many again) and the input gradient of the second layer (2 x 32 x 10).
FLOPS_PER_SAMPLE = 2 * 2 * (784 * 32 + 32 * 10) + 2 * 32 * 10


def rows(out_dir, version=0):
    with open(Path(out_dir) / "fit" / f"version_{version}" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def column(table, key):
    return [float(r[key]) for r in table if r.get(key)]


@pytest.fixture
def fitted(tmp_path):
    from lightning_worker import fit

    tree = build_tree(tmp_path / "powercap")
    trainer, module, callback = fit(str(tmp_path), str(tree.root), model=None)
    return tmp_path, trainer, module, callback


def test_per_step_energy_in_the_csv_log_sums_to_each_epoch_and_to_the_trees_truth(fitted):
    out, trainer, module, callback = fitted
    table = rows(out)
    steps = [r for r in table if r.get("energy/train_steps/measured/total_j")]
    assert len(steps) == module.steps == 8  # 4 batches (64, 64, 64, 8) x 2 epochs, every one logged
    for epoch in (0, 1):
        step_j = math.fsum(float(r["energy/train_steps/measured/total_j"]) for r in steps if r["epoch"] == str(epoch))
        epoch_j = [float(r["energy/train_epoch/measured/total_j"]) for r in table
                   if r.get("energy/train_epoch/measured/total_j") and r["epoch"] == str(epoch)]
        assert epoch_j == [pytest.approx(4 * STEP_J, rel=1e-6)]
        assert step_j == pytest.approx(epoch_j[0], rel=0.01)
    assert math.fsum(column(table, "energy/train_steps/measured/total_j")) == pytest.approx(module.hardware.added_j,
                                                                                          rel=0.01)
    assert column(table, "energy/train_steps/measured/cpu_0_package_j") == [pytest.approx(PACKAGE_J)] * 8
    assert column(table, "energy/train_steps/measured/cpu_0_dram_j") == [pytest.approx(DRAM_J)] * 8


def test_steps_logged_every_third_batch_are_the_sums_of_their_batches_and_add_up_to_the_epochs(tmp_path):
    from lightning_worker import fit

    tree = build_tree(tmp_path / "powercap")
    trainer, module, callback = fit(str(tmp_path), str(tree.root), epochs=1, log_every_n_steps=3)
    table = rows(tmp_path)
    # 4 batches: the first three logged together, the last at the epoch's end.
    assert column(table, "energy/train_steps/measured/total_j") == [pytest.approx(3 * STEP_J), pytest.approx(STEP_J)]
    assert column(table, "energy/train_steps/counted/flops") == [(3 * 64) * FLOPS_PER_SAMPLE, 8 * FLOPS_PER_SAMPLE]
    assert column(table, "energy/train_epoch/measured/total_j") == [pytest.approx(4 * STEP_J)]
    assert [m.total_energy_j for m in callback.logged] == [pytest.approx(3 * STEP_J), pytest.approx(STEP_J)]


def test_a_validation_loop_inside_a_logging_interval_is_left_out_of_the_steps_and_the_epoch(tmp_path):
    from lightning_worker import fit

    tree = build_tree(tmp_path / "powercap")
    # 4 batches an epoch, logged every 3, validated every 2 batches (4 batches, each drawing a step's joules):
    # the first interval of each epoch holds a validation loop.
    trainer, module, callback = fit(str(tmp_path), str(tree.root), epochs=2, log_every_n_steps=3,
                                    val_check_interval=2, validation_draws=True)
    validations = callback.results["validation"]
    assert len(validations) == 4 and module.hardware.added_j == (8 + 4 * 4) * STEP_J
    assert [m.total_energy_j for m in callback.logged] == [pytest.approx(3 * STEP_J), pytest.approx(STEP_J)] * 2
    assert [m.total_energy_j for m in callback.results["train_epoch"]] == [pytest.approx(4 * STEP_J)] * 2
    assert [m.total_energy_j for m in validations] == [pytest.approx(4 * STEP_J)] * 4
    assert [m.flops for m in callback.logged] == [(3 * 64) * FLOPS_PER_SAMPLE, 8 * FLOPS_PER_SAMPLE] * 2
    table = rows(tmp_path)
    assert math.fsum(column(table, "energy/train_steps/measured/total_j")) == pytest.approx(8 * STEP_J)


def test_the_lightning_modules_forward_flops_are_counted_per_step_and_epoch_outside_their_joules(fitted):
    out, trainer, module, callback = fitted
    table = rows(out)
    assert column(table, "energy/train_steps/counted/flops") == [64 * FLOPS_PER_SAMPLE] * 3 + [8 * FLOPS_PER_SAMPLE] \
        + [64 * FLOPS_PER_SAMPLE] * 3 + [8 * FLOPS_PER_SAMPLE]
    assert column(table, "energy/train_epoch/counted/flops") == [200 * FLOPS_PER_SAMPLE] * 2
    for epoch in callback.results["train_epoch"]:
        assert epoch.flops == 200 * FLOPS_PER_SAMPLE
        assert not [w for w in epoch.warnings if "FLOP counting" in w or "flops" in w], epoch.warnings


def test_validation_is_measured_apart_from_the_training_epoch_it_runs_in(fitted):
    out, trainer, module, callback = fitted
    table = rows(out)
    # The hardware burns only in training steps: the validation loops hold none of it, the epochs all of it.
    assert column(table, "energy/validation/measured/total_j") == [0.0, 0.0]
    assert column(table, "energy/validation/counted/flops") == [200 * 2 * (784 * 32 + 32 * 10)] * 2  # forward only
    assert len(callback.results["validation"]) == 2
    assert all(v.duration_s > 0 for v in callback.results["validation"])


def test_a_test_loop_logs_its_own_figures(fitted):
    from lightning_worker import loader

    out, trainer, module, callback = fitted
    trainer.test(module, loader(), verbose=False)
    (test,) = callback.results["test"]
    assert test.total_energy_j == 0.0 and test.flops == 200 * 2 * (784 * 32 + 32 * 10)
    assert column(rows(out), "energy/test/measured/total_j") == [0.0]


def test_two_ddp_ranks_on_one_host_log_the_aggregate_once_with_the_host_counted_once(tmp_path):
    tree = build_tree(tmp_path / "powercap")
    env = {k: v for k, v in os.environ.items() if k not in ("ENERGYMETER_HOST_ID", "CUDA_VISIBLE_DEVICES")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               ENERGYMETER_HOST_ID="node-a")
    run = subprocess.run([sys.executable, str(REPO / "tests" / "lightning_worker.py"), str(tmp_path),
                          str(tree.root), "2"], env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    truth_j = ranks[0]["added_j"]  # rank 0 plays the host's hardware: one step's joules per step
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4  # 2 epochs of 100 samples per rank in batches of 64
    table = rows(tmp_path)
    step_j = column(table, "energy/train_steps/measured/total_j")
    assert len(step_j) == 4  # logged once (rank 0's logger), not once per rank
    assert math.fsum(step_j) == pytest.approx(truth_j, rel=0.01) and truth_j == 4 * STEP_J
    assert column(table, "energy/train_steps/measured/node-a/cpu_0_package_j") == [pytest.approx(PACKAGE_J)] * 4
    assert math.fsum(column(table, "energy/train_epoch/measured/total_j")) == pytest.approx(truth_j, rel=0.01)
    assert column(table, "energy/train_epoch/counted/flops") == [200 * FLOPS_PER_SAMPLE] * 2  # both ranks' samples
    assert not [k for k in table[0] if k.startswith("energy/") and "node-a" not in k and k.count("/") > 3]
    epochs = [e for r in ranks for e in r["epochs"]]
    assert all(e == epochs[0] for e in epochs[::2])  # every rank got the same aggregate
