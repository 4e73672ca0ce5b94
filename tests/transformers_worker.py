"""A tiny Transformers ``Trainer.train()`` on a fake powercap tree, with ``EnergyCallback`` and TensorBoard.

Usage: ``python -m torch.distributed.run --nproc-per-node=2 tests/transformers_worker.py <out_dir>
<powercap_root>`` (gloo on CPU), or with ``python`` for one process. The model is built from a config (no hub
download). Each rank writes ``<out_dir>/rank<R>.json`` (its log history, the joules its hardware added, its
steps); rank 0's TensorBoard integration writes event files under ``<out_dir>/tb``.
``test_integrations_transformers.py`` imports ``train``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments  # noqa: E402

from energymeter.integrations.transformers import attach  # noqa: E402
from training_hardware import Hardware  # noqa: E402

SAMPLES, BATCH = 128, 32


class TinyConfig(PretrainedConfig):
    model_type = "energymeter-tiny-mlp"

    def __init__(self, features: int = 784, hidden: int = 32, classes: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.features, self.hidden, self.classes = features, hidden, classes


class TinyModel(PreTrainedModel):
    """A 784-32-10 MLP as a Transformers model: ``forward(x, labels)`` returns the loss and the logits."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.net = nn.Sequential(nn.Linear(config.features, config.hidden), nn.ReLU(),
                                 nn.Linear(config.hidden, config.classes))
        self.post_init()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class Samples(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(SAMPLES, 784, generator=g), torch.randint(0, 10, (SAMPLES,), generator=g)

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class HardwareTrainer(Trainer):
    """A Trainer whose every training step (inside the callback's step window) runs ``hardware.step()``."""

    def __init__(self, *args, hardware: Hardware, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hardware = hardware

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.hardware.step()
        return loss

    def prediction_step(self, *args, **kwargs):
        """An evaluation batch draws one step's joules too when ``evaluation_draws`` is set."""
        out = super().prediction_step(*args, **kwargs)
        if getattr(self, "evaluation_draws", False):
            self.hardware.step()
        return out


def train(out_dir: str, powercap_root: str, epochs: int = 2, logging_steps: int = 1, eval_steps: int | None = None):
    """Train ``TinyModel`` (evaluating every ``eval_steps`` steps, each evaluation batch drawing a step's joules,
    where given); returns (trainer, callback)."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(out_dir) / "tb")  # read by the TensorBoard integration
    evaluation = {} if eval_steps is None else dict(eval_strategy="steps", eval_steps=eval_steps,
                                                    per_device_eval_batch_size=BATCH)
    args = TrainingArguments(output_dir=str(Path(out_dir) / "trainer"), num_train_epochs=epochs,
                             per_device_train_batch_size=BATCH, logging_steps=logging_steps,
                             report_to=["tensorboard"], save_strategy="no", use_cpu=True,
                             disable_tqdm=True, dataloader_num_workers=0, learning_rate=0.05, seed=0,
                             ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
                             **evaluation)
    torch.manual_seed(0)
    trainer = HardwareTrainer(model=TinyModel(TinyConfig()), args=args, train_dataset=Samples(),
                              eval_dataset=None if eval_steps is None else Samples(),
                              hardware=Hardware(powercap_root))
    trainer.evaluation_draws = eval_steps is not None
    callback = attach(trainer, ["rapl", "flops"], powercap_root=powercap_root)
    trainer.train()
    return trainer, callback


def main(out_dir: str, powercap_root: str) -> None:
    torch.set_num_threads(1)
    trainer, callback = train(out_dir, powercap_root)
    rank = int(os.environ.get("RANK", "0"))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
        {"history": trainer.state.log_history, "added_j": trainer.hardware.added_j,
         "steps": trainer.state.global_step, "run": callback.run.to_dict()}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
