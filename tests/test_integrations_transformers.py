"""energymeter.integrations.transformers: a real Trainer.train() on CPU (a tiny model built from a config, no
hub download) over a fake powercap tree, read back from the TensorBoard integration's event files; two gloo
ranks under torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training_hardware import DRAM_J, PACKAGE_J, STEP_J, build_tree

REPO = Path(__file__).resolve().parent.parent
#: FLOPs of one sample through the 784-32-10 MLP, forward and backward (see test_integrations_lightning).
FLOPS_PER_SAMPLE = 2 * 2 * (784 * 32 + 32 * 10) + 2 * 32 * 10


def scalars(tb_dir):
    """Tag -> the values the TensorBoard integration wrote, in step order, read from its event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = {p.parent for p in Path(tb_dir).rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture
def trained(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers_worker import train

    tree = build_tree(tmp_path / "powercap")
    trainer, callback = train(str(tmp_path), str(tree.root))
    return tmp_path, trainer, callback


def test_per_step_energy_reaches_tensorboard_and_sums_to_the_run_and_the_trees_truth(trained):
    out, trainer, callback = trained
    tags = scalars(out / "tb")
    steps_j = tags["train/energy/train_steps/measured/total_j"]
    assert len(steps_j) == trainer.state.global_step == 8  # 128 samples in batches of 32, 2 epochs, each logged
    assert tags["train/energy/train_steps/measured/cpu_0_package_j"] == [pytest.approx(PACKAGE_J)] * 8
    assert tags["train/energy/train_steps/measured/cpu_0_dram_j"] == [pytest.approx(DRAM_J)] * 8
    (run_j,) = tags["train/energy/train/measured/total_j"]
    assert math.fsum(steps_j) == pytest.approx(run_j, rel=0.01)
    assert run_j == pytest.approx(trainer.hardware.added_j, rel=0.01) and trainer.hardware.added_j == 8 * STEP_J
    assert tags["train/energy/train_steps/counted/flops"] == [32 * FLOPS_PER_SAMPLE] * 8
    assert tags["train/energy/train/counted/flops"] == [256 * FLOPS_PER_SAMPLE]


def test_the_figures_are_in_the_trainers_log_history_beside_its_own(trained):
    out, trainer, callback = trained
    history = trainer.state.log_history
    logged = [h for h in history if "loss" in h]
    assert [h["energy/train_steps/measured/total_j"] for h in logged] == [pytest.approx(STEP_J)] * 8
    closing = history[-1]
    assert "train_runtime" in closing and closing["energy/train/measured/total_j"] == pytest.approx(8 * STEP_J)
    assert callback.run.total_energy_j == pytest.approx(8 * STEP_J)
    assert not [w for w in callback.run.warnings if "flops" in w or "FLOP" in w], callback.run.warnings


def test_an_evaluation_inside_a_logging_interval_is_left_out_of_the_steps_and_kept_in_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers_worker import train

    tree = build_tree(tmp_path / "powercap")
    # 8 steps, logged every 3; evaluated every 2 steps (4 batches, each drawing a step's joules): every
    # logging interval but the first holds an evaluation.
    trainer, callback = train(str(tmp_path), str(tree.root), logging_steps=3, eval_steps=2)
    assert trainer.state.global_step == 8 and trainer.hardware.added_j == (8 + 4 * 4) * STEP_J
    steps_j = [m.total_energy_j for m in callback.logged]
    assert math.fsum(steps_j) == pytest.approx(8 * STEP_J, rel=1e-6)  # the training steps' joules, no evaluation
    history = trainer.state.log_history
    assert math.fsum(h.get("energy/train_steps/measured/total_j", 0.0) for h in history) == pytest.approx(8 * STEP_J)
    # The log at step 3 holds step 3 (steps 1-2 went with the evaluation's log at step 2); the one at step 6,
    # steps 5 and 6 (step 4 went with the evaluation's log at step 4).
    assert [h["energy/train_steps/measured/total_j"] for h in history if "loss" in h] == [
        pytest.approx(STEP_J), pytest.approx(2 * STEP_J)]
    assert callback.run.total_energy_j == pytest.approx(trainer.hardware.added_j)  # evaluation is in the run
    assert math.fsum(m.flops for m in callback.logged) == 256 * FLOPS_PER_SAMPLE  # the training samples' alone
    assert not [w for w in callback.run.warnings if "FLOP counting" in w], callback.run.warnings


def test_two_gloo_ranks_log_the_aggregate_on_every_rank_with_the_host_counted_once(tmp_path):
    tree = build_tree(tmp_path / "powercap")
    env = {k: v for k, v in os.environ.items() if k not in ("ENERGYMETER_HOST_ID", "CUDA_VISIBLE_DEVICES")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", ENERGYMETER_HOST_ID="node-a", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(REPO / "tests" / "transformers_worker.py"), str(tmp_path), str(tree.root)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    truth_j = ranks[0]["added_j"]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4 and truth_j == 4 * STEP_J  # 64 samples per rank, 2 epochs
    for rank in ranks:  # every rank's logs hold the same aggregate
        logged = [h for h in rank["history"] if "loss" in h]
        assert [h["energy/train_steps/measured/node-a/cpu_0_package_j"] for h in logged] == [PACKAGE_J] * 4
        assert math.fsum(h["energy/train_steps/measured/total_j"] for h in logged) == pytest.approx(truth_j, rel=0.01)
        assert rank["history"][-1]["energy/train/measured/total_j"] == pytest.approx(truth_j, rel=0.01)
        assert [h["energy/train_steps/counted/flops"] for h in logged] == [64 * FLOPS_PER_SAMPLE] * 4  # both ranks
    assert ranks[0]["run"] == ranks[1]["run"]
    tags = scalars(tmp_path / "tb")  # rank 0's integration alone writes
    assert math.fsum(tags["train/energy/train_steps/measured/total_j"]) == pytest.approx(truth_j, rel=0.01)


def test_attach_puts_the_callback_right_after_the_flow_callback_even_a_subclass_of_it_and_before_integrations():
    import types

    from transformers import DefaultFlowCallback, PrinterCallback, TrainerCallback

    from energymeter.integrations.transformers import EnergyHooks, attach

    class MyFlow(DefaultFlowCallback):  # a user's flow callback, named otherwise
        pass

    class Integration(TrainerCallback):
        pass

    for flow in (DefaultFlowCallback(), MyFlow()):
        callbacks = [PrinterCallback(), flow, Integration()]
        trainer = types.SimpleNamespace(callback_handler=types.SimpleNamespace(callbacks=callbacks))
        callback = attach(trainer, ["flops"])
        assert isinstance(callback, EnergyHooks) and callbacks.index(callback) == 2  # after the flow, before the rest
        callback._phases.close()
    callbacks = [Integration()]
    callback = attach(types.SimpleNamespace(callback_handler=types.SimpleNamespace(callbacks=callbacks)), ["flops"])
    assert callbacks[0] is callback  # no flow callback: first
    callback._phases.close()
