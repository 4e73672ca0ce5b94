"""The README's integration examples run as written (each in a fresh interpreter, in a scratch directory, its
default backends reading a fake powercap tree)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from energymeter.testing import FakePowercap

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = dict(re.findall(r"```python\n# example: ([\w-]+)\n(.*?)```", (REPO / "README.md").read_text(), re.S))


def run_example(name, tmp_path, timeout_s=300):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, dram=True, energy_uj=1_000_000)
    env = {k: v for k, v in os.environ.items() if k not in ("ENERGYMETER_HOST_ID", "CUDA_VISIBLE_DEVICES")}
    env.update(ENERGYMETER_POWERCAP_ROOT=str(tree.root), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               RAY_USAGE_STATS_ENABLED="0", TENSORBOARD_LOGGING_DIR=str(tmp_path / "tb"))
    script = tmp_path / f"example_{name.replace('-', '_')}.py"  # not lightning.py: it would shadow the package
    script.write_text(EXAMPLES[name])
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def test_the_readme_has_one_example_per_integration():
    assert set(EXAMPLES) == {"lightning", "transformers", "ray-train"}


def test_the_lightning_example_runs_and_writes_the_steps_to_its_csv_log(tmp_path):
    run = run_example("lightning", tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "energy/train_epoch/measured/total_j" in run.stdout
    (metrics,) = (tmp_path / "logs").rglob("metrics.csv")
    assert "energy/train_steps/measured/cpu_0_package_j" in metrics.read_text().splitlines()[0]


def test_the_transformers_example_runs_and_reports_the_runs_joules(tmp_path):
    run = run_example("transformers", tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"^\d+\.\d J \(measured\) in \d+\.\d s$", run.stdout, re.M), run.stdout[-2000:]
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_the_ray_train_example_runs_and_its_result_holds_both_workers_aggregate(tmp_path, ray_workers):
    run = run_example("ray-train", tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "'energy/report/measured/total_j'" in run.stdout and "'energy/train/measured/total_j'" in run.stdout
    assert (tmp_path / "ray_results").is_dir()  # Ray wrote where the example said, not under ~/ray_results


from test_ray_sweep import ray_workers  # noqa: E402, F401 - the fixture: Ray importable in its workers
