"""Runs feed-forward LIF networks in lava-nc and prints their spikes and timings as JSON.

This file is executed by a Python 3.10 interpreter that has lava-nc installed (lava-nc supports only
3.10); it imports nothing from energymeter. Input on stdin (JSON, schema 2):

    {"schema_version": 2, "record": "counts" | "neurons",
     "networks": [{"timesteps": int,
                   "layers": [{"weights": [[...]] | null, "bias": [...], "du": float, "dv": float,
                               "vth": float}, ...],
                   "samples": [[[spike per input neuron] per timestep] per sample]}, ...]}

A layer is a floating-point LIF process; with ``weights`` it is fed by a Dense process from the layer
before it (from a RingBuffer of the sample's spikes for the first layer); ``weights: null`` (first
layer only) leaves its input port unconnected, so its bias alone drives it. Each sample is its own
lava build (processes, connections, monitors), run with ``Loihi2SimCfg(select_tag="floating_pt")``.

Output on stdout (JSON): {"schema_version": 2, "results": [per network {
    "spikes": [[[count per timestep] per layer] per sample],
    "neurons": [[["0101..." per timestep] per layer] per sample]   (only with record "neurons"),
    "build_s": [per sample], "run_s": [per sample], "readout_s": [per sample]}]}.
``run_s`` times lava's ``run()`` call alone (it compiles and starts lava's runtime, then steps);
``build_s`` the process construction and wiring before it; ``readout_s`` the monitors' ``get_data()``
and ``stop()`` after it. Wall-clock seconds, ``time.perf_counter``.
"""

import json
import sys
import time


def run_sample(network, spikes, record):
    import numpy as np
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    steps = network["timesteps"]
    start = time.perf_counter()
    port = None
    lifs, monitors = [], []
    for index, layer in enumerate(network["layers"]):
        bias = np.asarray(layer["bias"], dtype=np.float64)
        lif = LIF(shape=bias.shape, du=layer["du"], dv=layer["dv"], vth=layer["vth"], bias_mant=bias)
        if layer["weights"] is not None:
            if index == 0:
                port = RingBuffer(data=np.asarray(spikes, dtype=np.float64).reshape(steps, -1).T).s_out
            dense = Dense(weights=np.asarray(layer["weights"], dtype=np.float64))
            port.connect(dense.s_in)
            dense.a_out.connect(lif.a_in)
        elif index > 0:
            raise ValueError(f"layer {index}: only the first layer may be bias-driven (weights null)")
        monitor = Monitor()
        monitor.probe(lif.s_out, steps)
        lifs.append(lif)
        monitors.append(monitor)
        port = lif.s_out
    built = time.perf_counter()
    lifs[0].run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    ran = time.perf_counter()
    try:
        trains = [np.asarray(monitor.get_data()[lif.name]["s_out"]) > 0 for lif, monitor in zip(lifs, monitors)]
    finally:
        lifs[0].stop()
    done = time.perf_counter()
    out = {"spikes": [[int(n) for n in train.sum(axis=1)] for train in trains],
           "build_s": built - start, "run_s": ran - built, "readout_s": done - ran}
    if record == "neurons":
        out["neurons"] = [["".join("1" if s else "0" for s in row) for row in train] for train in trains]
    return out


def main():
    spec = json.load(sys.stdin)
    if spec.get("schema_version") != 2:
        raise SystemExit(f"lava_runner: expected schema_version 2, got {spec.get('schema_version')!r}")
    record = spec.get("record", "counts")
    results = []
    for network in spec["networks"]:
        runs = [run_sample(network, sample, record) for sample in network["samples"]]
        result = {key: [run[key] for run in runs] for key in ("spikes", "build_s", "run_s", "readout_s")}
        if record == "neurons":
            result["neurons"] = [run["neurons"] for run in runs]
        results.append(result)
    json.dump({"schema_version": 2, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
