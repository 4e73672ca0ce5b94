"""A tiny Lightning fit on a fake powercap tree, with ``EnergyCallback`` and a CSVLogger.

Usage: ``python tests/lightning_worker.py <out_dir> <powercap_root> <devices>``. With 2 devices Lightning's
``ddp`` strategy re-runs this script for rank 1 (gloo on CPU). Rank 0's CSVLogger writes
``<out_dir>/fit/version_0/metrics.csv``; each rank writes ``<out_dir>/rank<R>.json`` with the joules its
hardware added and the steps it ran. ``test_integrations_lightning.py`` imports ``TinyModule`` and ``fit``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
from torch import nn

from energymeter.integrations.lightning import EnergyCallback
from training_hardware import Hardware

SAMPLES, BATCH = 200, 64


class TinyModule(L.LightningModule):
    """A 784-32-10 MLP whose every training step runs ``hardware.step()``."""

    def __init__(self, hardware: Hardware) -> None:
        super().__init__()
        self.hardware = hardware
        self.net = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
        self.steps = 0
        self.validation_draws = False  # when set, every validation batch draws a step's joules too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.hardware.step()
        self.steps += 1
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        if self.validation_draws:
            self.hardware.step()
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), sync_dist=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", nn.functional.cross_entropy(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(SAMPLES, 784, generator=g),
                                          torch.randint(0, 10, (SAMPLES,), generator=g))
    return torch.utils.data.DataLoader(data, batch_size=BATCH)


def fit(out_dir: str, powercap_root: str, devices: int = 1, epochs: int = 2, model="net",
        validation_draws: bool = False, **trainer_options):
    """Fit ``TinyModule`` with an EnergyCallback over the tree; returns (trainer, module, callback)."""
    module = TinyModule(Hardware(powercap_root))
    module.validation_draws = validation_draws
    callback = EnergyCallback(["rapl", "flops"], model=model, powercap_root=powercap_root)
    options = dict(max_epochs=epochs, accelerator="cpu", devices=devices, log_every_n_steps=1,
                   logger=L.loggers.CSVLogger(out_dir, name="fit"), callbacks=[callback],
                   enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                   num_sanity_val_steps=0)
    if devices > 1:
        options["strategy"] = "ddp"
    options.update(trainer_options)
    trainer = L.Trainer(**options)
    trainer.fit(module, loader(), loader())
    return trainer, module, callback


def main(out_dir: str, powercap_root: str, devices: str) -> None:
    torch.set_num_threads(1)
    trainer, module, callback = fit(out_dir, powercap_root, int(devices))
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(
        {"steps": module.steps, "added_j": module.hardware.added_j,
         "epochs": [m.to_dict() for m in callback.results["train_epoch"]]}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
