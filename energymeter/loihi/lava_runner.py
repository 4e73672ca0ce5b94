"""Runs a small feed-forward Dense/LIF network in lava-nc and prints its spikes as JSON.

This file is executed by a Python 3.10 interpreter that has lava-nc installed (lava-nc supports only
3.10); it imports nothing from energymeter. Input on stdin (JSON):

    {"layers": [{"weights": [[...]], "bias": [...]}, ...], "du": float, "dv": float, "vth": float,
     "samples": [[[spike per input neuron] per timestep] per sample], "timesteps": int}

Output on stdout (JSON): {"spikes": [[[count per timestep] per layer] per sample], "wall_s": float}.
Every layer is a floating-point Dense process followed by a LIF process, run with Loihi2SimCfg.
"""

import json
import sys
import time


def run_sample(spec, spikes):
    import numpy as np
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    steps = spec["timesteps"]
    source = RingBuffer(data=np.asarray(spikes, dtype=float).T)  # (neurons, timesteps)
    port = source.s_out
    lifs, monitors = [], []
    for layer in spec["layers"]:
        weights = np.asarray(layer["weights"], dtype=float)
        dense = Dense(weights=weights)
        lif = LIF(shape=(weights.shape[0],), du=spec["du"], dv=spec["dv"], vth=spec["vth"],
                  bias_mant=np.asarray(layer["bias"], dtype=float))
        port.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        monitor = Monitor()
        monitor.probe(lif.s_out, steps)
        lifs.append(lif)
        monitors.append(monitor)
        port = lif.s_out
    lifs[0].run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    try:
        counts = []
        for lif, monitor in zip(lifs, monitors):
            data = monitor.get_data()[lif.name]["s_out"]  # (timesteps, neurons)
            counts.append([int(v) for v in np.asarray(data).sum(axis=1)])
    finally:
        lifs[0].stop()
    return counts


def main():
    spec = json.load(sys.stdin)
    start = time.perf_counter()
    spikes = [run_sample(spec, sample) for sample in spec["samples"]]
    json.dump({"spikes": spikes, "wall_s": time.perf_counter() - start}, sys.stdout)


if __name__ == "__main__":
    main()
