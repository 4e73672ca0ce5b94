"""What a simulation counts as it runs: spikes per layer and step, synaptic events, neuron updates (NeuroBench's
definitions; see ``simulate``), shared by the IF and lava dynamics."""

from __future__ import annotations

import torch


class _Totals:
    def __init__(self, spiking_layers: list[str], timesteps: int) -> None:
        names = ["input"] + spiking_layers
        self.spikes = {n: 0 for n in names}
        self.per_step = {n: [0] * timesteps for n in names}
        self.synops = 0
        self.dense = 0
        self.pool = 0
        self.packets = 0
        self.active = 0
        self.inactive = 0
        self.spiking_updates = 0
        self.hidden_zeros = 0
        self.hidden_total = 0


def _count_synops(kind: str, fanout: torch.Tensor | None, spikes: torch.Tensor, totals: _Totals,
                  core_fanout: torch.Tensor | None = None) -> None:
    """Synaptic events of one layer's incoming spikes and, with ``core_fanout``, the packets that carried them."""
    if fanout is None:  # a bias-driven layer has no synapses
        return
    # float64 sums integers exactly up to 2**53; float32 would round counts above 2**24.
    flat = spikes.flatten(1).to(torch.float64)
    events = int((flat * fanout.flatten().to(torch.float64)).sum())
    if core_fanout is not None:
        totals.packets += int((flat * core_fanout.flatten().to(torch.float64)).sum())
    if kind == "avgpool":
        totals.pool += events
    else:
        totals.synops += events


def _count_neurons(name: str, current: torch.Tensor, fired: torch.Tensor | None, totals: _Totals, step: int,
                   trains: dict[str, list[torch.Tensor]] | None) -> None:
    active = int((current != 0).sum())
    totals.active += active
    totals.inactive += current.numel() - active
    if fired is not None:
        spikes = int(fired.sum())
        totals.spiking_updates += int((fired & (current != 0)).sum())
        totals.spikes[name] += spikes
        totals.per_step[name][step] += spikes
        totals.hidden_zeros += fired.numel() - spikes
        totals.hidden_total += fired.numel()
        if trains is not None:
            trains[name].append(fired.clone())


def _count_input(spikes: torch.Tensor, totals: _Totals, step: int,
                 trains: dict[str, list[torch.Tensor]] | None) -> None:
    n_in = int(spikes.sum())
    totals.spikes["input"] += n_in
    totals.per_step["input"][step] += n_in
    if trains is not None:
        trains["input"].append(spikes != 0)
