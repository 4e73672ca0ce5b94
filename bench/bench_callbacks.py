"""What the framework callbacks cost per training step (issue 19): interleaved rounds, CPU time, median ratio.

A 784-256-10 MLP (batch 64, SGD, one torch thread) trains on random data:

* ``plain torch step``: the step written by hand (forward, loss, backward, optimizer step), no framework;
* ``Lightning step`` and ``Lightning step + EnergyCallback``: the same step in ``Trainer.fit`` without and with
  ``energymeter.integrations.lightning.EnergyCallback`` (rapl on a fake powercap tree, FLOPs counted, a
  CSVLogger), the energy logged every step (``log_every_n_steps=1``) or every 50 (Lightning's default);
* ``Trainer step`` and ``Trainer step + EnergyCallback``: the same in ``transformers.Trainer.train()``
  (no report_to integration), the Trainer logging every step (``logging_steps=1``) or every 50;
* both once more with the callback counting no FLOPs (``backends=["rapl"]``), logging every 50.

A step's time is the CPU time of the training thread from one batch's start to the next one's (every hook,
the logging, the callback included), the median over a fit's steps. Each round runs every variant once, in
alternating order, and each ratio is taken within a round. The callback's cost per step is the with/without
difference; the target (at most 2% of a plain step) is judged on the distribution-free 95% interval of the
median of (with - without) / plain, round by round.

The fits' difference holds every indirect cost (the framework's dispatch to one more callback, caches) and the
noise of whole fits on a shared machine. The callbacks' direct cost is measured apart, in interleaved rounds of
``DIRECT_STEPS`` hand-written steps: each hook call the framework would make per step (Lightning's
``on_train_batch_start`` / ``on_train_batch_end``, the Trainer's ``on_step_begin`` / ``on_step_end``, with the
logging every 50 steps) is timed around itself on the same clock, and to it is added what the module's forward
costs more with the callback's FLOP recorder on it (a step of a module of one-weight layers of the same
structure, recorded against bare in alternating blocks of one logging interval, each recorded block a window
of its own opened and closed inside its timing: the recording forward, the marks after the window's first
backward, putting them back when the window opens, and the window's edges), less what the timing itself costs (empty hooks timed the same way). To that is added
what the framework spends dispatching its per-step hooks to one more callback of EnergyCallback's shape
(its own dispatcher, ``_call_callback_hooks`` or ``CallbackHandler.call_event``, over the hooks a short fit
showed it calls once per step, with and without that callback). The sum, the callback's cost per step, is taken
as a share of the plain step measured in the same round. Nothing is asserted.
Run: ``.venv/bin/python bench/bench_callbacks.py`` (``BENCH_ROUNDS=0``: the direct cost alone).
"""

from __future__ import annotations

import inspect
import logging
import os
import statistics
import sys
import tempfile
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench_window import CLOCK, CLOCK_NAME, median_ci, quartiles, verdict_at_most  # noqa: E402
from energymeter import Meter  # noqa: E402
from energymeter.testing import FakePowercap  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))  # 0: the direct cost alone
STEPS = 150
BATCH = 64
TARGET_PERCENT = 2.0
LOG_EVERY = (1, 50)
DIRECT_ROUNDS = int(os.environ.get("BENCH_DIRECT_ROUNDS", "21"))
DIRECT_STEPS = 200


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def data() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(STEPS * BATCH, 784, generator=g),
                                          torch.randint(0, 10, (STEPS * BATCH,), generator=g))


def plain_step_s() -> float:
    """The median CPU seconds of a hand-written step."""
    net, loss_fn = mlp(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    times = []
    for x, y in torch.utils.data.DataLoader(data(), batch_size=BATCH):
        start = CLOCK()
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()
        times.append(CLOCK() - start)
    return statistics.median(times[5:])


class StepClock:
    """Records ``CLOCK`` at every batch's start; a fit's step time is the median difference."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def tick(self, *args, **kwargs) -> None:
        self.marks.append(CLOCK())

    def step_s(self) -> float:
        diffs = [b - a for a, b in zip(self.marks, self.marks[1:])]
        return statistics.median(diffs[5:])


def lightning_step_s(work: str, energy: bool, tree_root: str, every: int, flops: bool = True) -> float:
    import lightning.pytorch as L

    from energymeter.integrations.lightning import EnergyCallback

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    clock = StepClock()
    timer = type("Timer", (L.Callback,), {"on_train_batch_start": clock.tick})()
    backends = ["rapl", "flops"] if flops else ["rapl"]
    energy_cb = EnergyCallback(backends, model="net" if flops else False, powercap_root=tree_root)
    callbacks = [timer] + ([energy_cb] if energy else [])
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, log_every_n_steps=every, callbacks=callbacks,
                        logger=L.loggers.CSVLogger(work, name="bench"), enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(Module(), torch.utils.data.DataLoader(data(), batch_size=BATCH))
    return clock.step_s()


def trainer_step_s(work: str, energy: bool, tree_root: str, every: int, flops: bool = True, extra: Any = None) -> float:
    from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from energymeter.integrations.transformers import attach

    class Model(PreTrainedModel):
        config_class = PretrainedConfig

        def __init__(self, config) -> None:
            super().__init__(config)
            self.net = mlp()

        def forward(self, x, labels=None):
            return {"loss": nn.functional.cross_entropy(self.net(x), labels)}

    class Samples(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.data = data()

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, i):
            x, y = self.data[i]
            return {"x": x, "labels": y}

    clock = StepClock()
    timer = type("Timer", (TrainerCallback,), {"on_step_begin": clock.tick})()
    args = TrainingArguments(output_dir=work, num_train_epochs=1, per_device_train_batch_size=BATCH,
                             logging_steps=every, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
                             learning_rate=0.01, dataloader_num_workers=0)
    trainer = Trainer(model=Model(PretrainedConfig()), args=args, train_dataset=Samples(),
                      callbacks=[timer] + ([extra] if extra is not None else []))
    trainer.remove_callback(PrinterCallback)  # it prints every log: neither variant's work, and it floods the output
    if energy:
        attach(trainer, ["rapl", "flops"] if flops else ["rapl"], count_flops=flops, powercap_root=tree_root)
    trainer.train()
    return clock.step_s()


class _Trainer:
    """What the Lightning hooks read of a Trainer: the logging interval, the loggers, the step counters."""

    log_every_n_steps = 50
    loggers: list = []
    current_epoch = 0
    global_step = 1
    sanity_checking = False


class _Module(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def _one_weight_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))


def _counting(base: type, prefix: str = "on_") -> Any:
    """An instance of a ``base`` subclass whose every ``on_*`` hook counts its calls (in ``.calls``)."""
    calls: dict[str, int] = {}

    def make(name: str) -> Any:
        def hook(self, *args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
        return hook

    cls = type("Counting", (base,), {n: make(n) for n in dir(base) if n.startswith(prefix)})
    instance = cls()
    instance.calls = calls
    return instance


def per_step_hooks(tree_root: str) -> tuple[list[str], list[str]]:
    """The hooks Lightning calls on a callback once per training batch, and the events the Trainer calls once per
    optimizer step (counted over a short fit of each, with no logging, evaluation or checkpoint due)."""
    import lightning.pytorch as L
    from transformers import TrainerCallback

    counter = _counting(L.Callback)
    steps = 20
    sample = torch.utils.data.Subset(data(), range(steps * BATCH))

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, callbacks=[counter], enable_progress_bar=False,
              enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0).fit(
        Module(), torch.utils.data.DataLoader(sample, batch_size=BATCH))
    lightning = sorted(n for n, c in counter.calls.items() if c == steps)
    events = _counting(TrainerCallback)
    trainer_step_s(tempfile.mkdtemp(), False, tree_root, 1000, extra=events)
    trainer = sorted(n for n, c in events.calls.items() if c == STEPS)
    return lightning, trainer


def _nothing(*args: Any, **kwargs: Any) -> None:
    """An empty hook."""


class _Stub:
    """Empty hooks of both integrations: timed as the callbacks are, they give the timing's own cost."""

    on_train_batch_start = on_train_batch_end = on_step_begin = on_step_end = on_log = staticmethod(_nothing)


def dispatch_costs(lightning_hooks: list[str], trainer_events: list[str]) -> dict[str, Any]:
    """Functions giving the CPU seconds the frameworks spend per step dispatching their hooks to one more callback
    of EnergyCallback's shape (the framework's own loop over its callbacks, with it and without it)."""
    import lightning.pytorch as L
    from lightning.pytorch.trainer.call import _call_callback_hooks
    from transformers import DefaultFlowCallback, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    base_callbacks = list(trainer.callbacks)
    arity = {name: len(inspect.signature(getattr(L.Callback, name)).parameters) - 3 for name in lightning_hooks}
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    handlers = {extra: CallbackHandler([DefaultFlowCallback(), *([TrainerCallback()] if extra else [])], None,
                                       None, None, None) for extra in (False, True)}

    from energymeter.integrations.lightning import EnergyCallback

    # A callback of EnergyCallback's shape (its hooks empty: their work is timed apart; those it leaves not
    # callable, as it does), so the difference is the dispatch alone.
    shape = type("Shape", (L.Callback,), {n: None if getattr(EnergyCallback, n) is None else _nothing
                                          for n in lightning_hooks})

    def lightning(extra: bool) -> float:
        trainer.callbacks = [*base_callbacks, *([shape()] if extra else [])]
        start = CLOCK()
        for _ in range(DIRECT_STEPS):
            for name in lightning_hooks:
                _call_callback_hooks(trainer, name, *([None] * arity[name]))
        return (CLOCK() - start) / DIRECT_STEPS

    def transformers_(extra: bool) -> float:
        handler = handlers[extra]
        start = CLOCK()
        for _ in range(DIRECT_STEPS):
            for event in trainer_events:
                handler.call_event(event, args, state, control)
        return (CLOCK() - start) / DIRECT_STEPS

    return {"Lightning": lambda: lightning(True) - lightning(False),
            "Trainer": lambda: transformers_(True) - transformers_(False)}


def direct_costs(tree_root: str) -> dict[str, list[float]]:
    """Round by round: the plain step's CPU seconds; each callback's hooks' CPU seconds per step, timed around
    themselves; the same for empty hooks (the timing's cost); the one-weight twin's step with the FLOP recorder
    and without it; the frameworks' dispatch to one more callback."""
    from energymeter.integrations import lightning as lightning_hooks
    from energymeter.integrations import transformers as transformers_hooks

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(BATCH, 784, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    tiny_x = torch.randn(1, 1)

    def hand_step(net: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    def lightning_setup(flops: bool, stub: bool = False):
        module = _Module(mlp())
        trainer = _Trainer()
        trainer.strategy = type("Strategy", (), {"model": module})()
        if stub:
            hooks: Any = _Stub()
        else:
            hooks = lightning_hooks.EnergyHooks(["rapl", "flops"] if flops else ["rapl"],
                                                model="net" if flops else False, powercap_root=tree_root)
            hooks.setup(trainer, module, "fit")
            hooks.on_train_epoch_start(trainer, module)
        optimizer = torch.optim.SGD(module.parameters(), lr=0.01)

        def run() -> float:
            own = 0.0
            for i in range(DIRECT_STEPS):
                a = CLOCK()
                hooks.on_train_batch_start(trainer, module, None, i)
                own += CLOCK() - a
                hand_step(module.net, optimizer)
                a = CLOCK()
                hooks.on_train_batch_end(trainer, module, None, None, i)
                own += CLOCK() - a
            return own / DIRECT_STEPS

        return run, module.net, hooks

    def trainer_setup(flops: bool, stub: bool = False):
        from transformers import TrainerControl

        net = mlp()
        state, control = type("State", (), {"log_history": [{}]})(), TrainerControl()
        if stub:
            hooks: Any = _Stub()
        else:
            hooks = transformers_hooks.EnergyHooks(["rapl", "flops"] if flops else ["rapl"], count_flops=flops,
                                                   powercap_root=tree_root)
            hooks.on_train_begin(None, state, control, model=net)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)

        def run() -> float:
            own = 0.0
            for i in range(DIRECT_STEPS):
                a = CLOCK()
                hooks.on_step_begin(None, state, control)
                own += CLOCK() - a
                hand_step(net, optimizer)
                a = CLOCK()
                hooks.on_step_end(None, state, control)
                if (i + 1) % 50 == 0:
                    hooks.on_log(None, state, control, logs={})
                own += CLOCK() - a
            return own / DIRECT_STEPS

        return run, net, hooks

    variants = {}
    opened = []  # the callbacks' meters, closed once the rounds are done
    for framework, setup in (("Lightning", lightning_setup), ("Trainer", trainer_setup)):
        for flops in (True, False):
            run, _net, hooks = setup(flops)
            variants[f"{framework}{'' if flops else ' without FLOPs'}"] = run
            opened.append(hooks._phases)
        variants[f"timing {framework}"] = setup(False, stub=True)[0]
    # The FLOP recorder both callbacks put on their module (a recording forward, a mark per trainable parameter
    # after a window's first backward, put back when the next window opens), on a one-weight twin of the MLP:
    # its steps with it, in a window of one logging interval opened and closed inside the timing, and without it.
    recorded, bare = _one_weight_mlp(), _one_weight_mlp()
    recorder_meter = Meter(["flops"])
    interval = max(LOG_EVERY)

    def twin_steps(net: nn.Module, steps: int) -> float:
        start = CLOCK()
        if net is recorded:
            recorder_meter.begin_window("recorder", model=recorded)
        for _ in range(steps):
            net.zero_grad()
            net(tiny_x).sum().backward()
        if net is recorded:
            recorder_meter.end_window("recorder")
        return (CLOCK() - start) / steps

    def recorder_cost() -> float:
        """The recorder's CPU seconds a step: the median difference of 20 short blocks with it and without it,
        alternating (a difference of two long blocks drifts with the machine by more than the cost itself)."""
        differences = []
        for block in range(20):
            pair = (recorded, bare) if block % 2 == 0 else (bare, recorded)
            times = {id(net): twin_steps(net, interval) for net in pair}
            differences.append(times[id(recorded)] - times[id(bare)])
        return statistics.median(differences)

    variants["recorder"] = recorder_cost
    plain_net = mlp()
    plain_opt = torch.optim.SGD(plain_net.parameters(), lr=0.01)

    def plain() -> float:
        start = CLOCK()
        for _ in range(DIRECT_STEPS):
            hand_step(plain_net, plain_opt)
        return (CLOCK() - start) / DIRECT_STEPS

    dispatch = dispatch_costs(*per_step_hooks(tree_root))
    out: dict[str, list[float]] = {"plain": [], **{label: [] for label in variants},
                                   **{f"dispatch {f}": [] for f in dispatch}}
    runs = {"plain": plain, **variants, **{f"dispatch {f}": fn for f, fn in dispatch.items()}}
    for run in runs.values():  # warm up
        run()
    names = list(runs)
    for r in range(DIRECT_ROUNDS):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(runs[name]())
    recorder_meter.close()
    for phases in opened:
        phases.close()
    return out


def print_fits(root: str, tmp: str) -> None:
    """The whole fits' rows: each framework's step with and without the callback."""
    variants = {}
    for framework, run in (("Lightning", lightning_step_s), ("Trainer", trainer_step_s)):
        for every in LOG_EVERY:
            variants[f"{framework} step, log every {every}"] = lambda w, r=run, e=every: r(w, False, root, e)
            variants[f"{framework} step + EnergyCallback, log every {every}"] = lambda w, r=run, e=every: r(w, True,
                                                                                                          root, e)
        variants[f"{framework} step + EnergyCallback without FLOPs, log every 50"] = (
            lambda w, r=run: r(w, True, root, 50, flops=False))
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    plain: list[float] = []
    for name in names:  # warm up: imports, first fits
        variants[name](tempfile.mkdtemp(dir=tmp))
    for r in range(ROUNDS):
        plain.append(plain_step_s())
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(variants[name](tempfile.mkdtemp(dir=tmp)))
    print(f"clock: {CLOCK_NAME}; {ROUNDS} rounds of {STEPS} steps, batch {BATCH}, 784-256-10 MLP, 1 torch thread")
    print(f"  plain torch step (median over rounds)                {statistics.median(plain) * 1e6:9.1f} us")
    rows = [(f, e, "") for f in ("Lightning", "Trainer") for e in LOG_EVERY]
    rows += [(f, 50, " without FLOPs") for f in ("Lightning", "Trainer")]
    for framework, every, variant in rows:
        label = f"{framework}, log every {every}{variant}"
        bare = times[f"{framework} step, log every {every}"]
        with_cb = times[f"{framework} step + EnergyCallback{variant}, log every {every}"]
        ratios = [a / b for a, b in zip(with_cb, bare)]
        cost_pct = [(a - b) / p * 100 for a, b, p in zip(with_cb, bare, plain)]
        q1, med, q3 = quartiles(ratios)
        low, high = median_ci(cost_pct)
        print(f"  {label:<42} {statistics.median(bare) * 1e6:9.1f} us a step; with EnergyCallback "
              f"{statistics.median(with_cb) * 1e6:9.1f} us: ratio {med:.3f} [{q1:.3f}, {q3:.3f}]")
        print(f"    callback cost per step: {statistics.median(cost_pct):+.1f}% of a plain torch step, median 95% CI "
              f"[{low:+.1f}, {high:+.1f}]; target <= {TARGET_PERCENT:g}%: {verdict_at_most(cost_pct, TARGET_PERCENT)}")


def print_direct(root: str) -> None:
    """The direct cost's rows."""
    direct = direct_costs(root)
    plain_direct = direct.pop("plain")
    recorder = direct.pop("recorder")
    dispatch = {f: direct.pop(f"dispatch {f}") for f in ("Lightning", "Trainer")}
    timing = {f: direct.pop(f"timing {f}") for f in ("Lightning", "Trainer")}
    print(f"direct cost: {DIRECT_ROUNDS} interleaved rounds of {DIRECT_STEPS} hand-written steps (plain step "
          f"{statistics.median(plain_direct) * 1e6:.1f} us), each hook timed around itself, logging every 50 steps, "
          "plus the framework's dispatch of its per-step hooks to one more callback:")
    for framework, extra in dispatch.items():
        print(f"  {framework}: dispatch to one more callback of EnergyCallback's shape "
              f"{statistics.median(extra) * 1e6:.1f} us a step; the timing itself (empty hooks timed alike) "
              f"{statistics.median(timing[framework]) * 1e6:.1f} us a step, taken off below")
    print(f"  the FLOP recorder on the module's forward and backward: {statistics.median(recorder) * 1e6:.1f} us a "
          "step (added to the callbacks that count FLOPs)")
    for label, measured in direct.items():
        extra, clock = dispatch[label.split()[0]], timing[label.split()[0]]
        counted = recorder if "without FLOPs" not in label else [0.0] * len(recorder)
        own = [m - c + f for m, c, f in zip(measured, clock, counted)]
        pct = [(o + d) / p * 100 for o, d, p in zip(own, extra, plain_direct)]
        low, high = median_ci(pct)
        print(f"  {label + ' callback':<34} {statistics.median(own) * 1e6:6.1f} us a step of its own "
              f"+ dispatch = {statistics.median(pct):.2f}% of a plain step, "
              f"median 95% CI [{low:.2f}, {high:.2f}]; target <= {TARGET_PERCENT:g}%: "
              f"{verdict_at_most(pct, TARGET_PERCENT)}")


def main() -> int:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):  # the fits' banners, tips and notices
        logging.getLogger(name).setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="energymeter-bench-")
    tree = FakePowercap(f"{tmp}/powercap")
    tree.add_package(0, dram=True)
    root = str(tree.root)
    if ROUNDS:
        print_fits(root, tmp)
    print_direct(root)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
