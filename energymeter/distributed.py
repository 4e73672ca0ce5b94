"""One Measurement for a distributed step: every rank's window combined without counting shared hardware twice.

Ranks on one node share its CPU sockets, its DRAM and sometimes a GPU. A tracker per rank counts each
socket once per rank (4 ranks on a node report 4x the package energy). ``aggregate()`` is a collective
over a ``torch.distributed`` process group: every rank passes the Measurement of its own window and
every rank gets back the same aggregate. ``merge()`` is the pure rule it applies to the gathered
windows, usable on windows collected any other way.

How the windows are combined:

* **Host identity.** ``host_id()``: ``$ENERGYMETER_HOST_ID`` when set, else the hostname plus the first
  8 hex digits of the kernel's boot id (two machines cloned from one image can share a hostname, never
  a boot id). Domains in the aggregate carry it as a prefix: ``"<host>/cpu:0:package"``. Containers on one
  machine share its boot id but may have their own hostnames: give their ranks one ``$ENERGYMETER_HOST_ID``,
  or they count the machine's sockets once per container.
Each domain's declaration (``Measurement.domains``: its ``scope``, ``device_id``, ``contains``) says how
it combines; no rule reads a domain's name.

* **Host-wide counters** (scope ``host``: RAPL ``cpu:N:package|dram|psys|core|uncore``) count once per host. Two ranks
  read the same counter over windows that start and end a few microseconds to milliseconds apart. The
  aggregate takes the **largest** reading: each rank's reading is the counter's increase over a
  sub-interval of the union of the ranks' windows, so each is a lower bound of the host's energy over
  that union and the largest is the tightest bound available. (The reading of the longest window
  would usually be the same one, but windows that overlap without nesting can make the longest window
  not the one that saw the most energy.) When the readings differ by more than 10% of the largest, a
  warning says the windows were not aligned.
* **Devices** (scope ``device``: GPUs) count once per device id (``"<host>/gpu:<uuid>"``, the device
  class and its id), by the same largest-reading rule: two ranks that both see a GPU, under any CUDA
  index, do not double it. A device domain without an id (or one of several domains of a window that
  share one id) cannot be matched with other ranks' and is kept per rank (``"<host>/gpu:N:rank<R>"``)
  with a warning.
* **Per-process domains** (scope ``process``: ``cpu:model`` is this process's CPU seconds x power per
  thread; ``loihi:sim`` is this process's simulation) sum over ranks, so each keeps its own name:
  ``"<host>/cpu:model:rank<R>"``. The total rule then counts ``cpu:model`` only on hosts with no CPU
  counter, as in a single process.
* **Containment** is renamed with the domains (``"<host>/cpu:0:psys"`` contains ``"<host>/cpu:0:package"``)
  and united over ranks, so the total rule counts a psys once per host and not its packages.
* **Provenance** of a merged domain is the weakest label any rank gave it; the aggregate's
  ``total_provenance`` is then the weakest over the total, as for one window.
* **Failed domains.** A domain that failed on any rank that measured it fails in the aggregate, with
  every failing rank's reason (``"rank 3: NVML: GPU is lost"``): the surviving ranks' readings cover
  other windows, and a figure that silently stands in for the failed rank's window would claim more
  than was read.
* **Duration** is the longest window; **start time** the earliest start (wall clocks of several hosts
  are only as aligned as their NTP). **FLOPs** are counted per process and sum; when some ranks counted
  and others did not, the sum would understate, so ``flops`` is None with a warning. Uncounted operators
  sum their call counts. **Warnings** keep every rank's, prefixed ``"rank R: "``, then the aggregate's own.
* **Device ids**: each aggregate domain keeps its hardware identity (the zone's sysfs path, the GPU's UUID);
  ranks on one host that name different ids for one host-wide domain get a warning.
* **Name**: the ranks' common window name; differing names are joined with ``"|"`` in rank order.

Validation happens after the gather, on every rank alike: a rank with a bad host id or a
non-Measurement argument makes every rank raise the same ``DistributedError`` instead of leaving the
others waiting in a collective. A rank that never calls ``aggregate()`` still blocks the others until
the process group's timeout, as with any collective.

Recipe (DDP, under torchrun): every rank measures its own window around the training step, then every
rank calls ``aggregate()`` at the same point (it is a collective)::

    meter = energymeter.Meter(["rapl", "nvml"])   # this rank's counters, opened once
    with meter.window("train") as w:       # CUDA is synchronised at both edges
        for _ in range(steps_per_window):   # GPU counters update every ~0.1 s: keep windows longer
            train_step(ddp_model, optimizer, next(batches))
    total = energymeter.distributed.aggregate(w.result)   # the same Measurement on every rank
    if dist.get_rank() == 0:
        print(f"{total.total_energy_j:.1f} J ({total.total_provenance}) in {total.duration_s:.2f} s")

Under nccl, ``aggregate()`` moves its payload through the GPU (``all_gather_object`` needs
``torch.cuda.set_device(local_rank)`` first); ``group=dist.new_group(backend="gloo")`` keeps it on the CPU.

torch is imported inside ``aggregate()`` only; importing this module loads neither torch nor hardware.
"""

from __future__ import annotations

import math
import os
import socket
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any, Sequence

from .domains import DEVICE, GPU, HOST, Domain
from .errors import EnergymeterError
from .measurement import PROVENANCES, Measurement

#: Environment variable that overrides the host identity (tests simulate several hosts on one machine).
HOST_ID_ENV = "ENERGYMETER_HOST_ID"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
#: Readings of one host-wide counter that spread by more than this fraction of the largest draw a warning.
MISALIGNED_FRACTION = 0.10


class DistributedError(EnergymeterError):
    """torch.distributed is not usable for an aggregate, or a rank sent something that cannot be merged."""


def host_id(boot_id_path: str = BOOT_ID_PATH) -> str:
    """This process's host identity: ``$ENERGYMETER_HOST_ID``, else ``"<hostname>-<boot id[:8]>"``.

    Args:
        boot_id_path: The file holding the kernel's boot id (read once per call).

    Returns:
        A string without ``/``; the hostname alone when the boot id cannot be read (not Linux).

    Raises:
        DistributedError: ``$ENERGYMETER_HOST_ID`` is set but empty or contains ``/``.
    """
    override = os.environ.get(HOST_ID_ENV)
    if override is not None:
        _check_host(override, f"${HOST_ID_ENV}")
        return override
    name = socket.gethostname().replace("/", "_") or "localhost"
    try:
        with open(boot_id_path, encoding="ascii") as handle:
            boot = handle.read().strip().replace("-", "")[:8]
    except OSError:
        return name
    return f"{name}-{boot}" if boot else name


def _check_host(host: str, what: str) -> None:
    if not host or "/" in host:
        raise DistributedError(f"{what} {host!r} is not a usable host id: it must be non-empty and contain no '/'")


def merge(windows: Sequence[tuple[str, Measurement]], ranks: Sequence[int] | None = None) -> Measurement:
    """Combine several ranks' windows into one Measurement, counting shared hardware once.

    The rules are in this module's docstring.

    Args:
        windows: ``(host, measurement)`` per rank; measurements carry unprefixed domains
            (``"cpu:0:package"``, ``"gpu:0"``), as a Meter returns them.
        ranks: Each window's rank, used in per-process domain names, reasons and warnings
            (default: the position in ``windows``).

    Returns:
        A Measurement with host-prefixed domains, whose ``total_energy_j`` is the aggregate total.

    Raises:
        ValueError: no windows, ``ranks`` of another length or repeated, a bad host, or a domain that
            already carries a host prefix.
    """
    if not windows:
        raise ValueError("merge() needs at least one window")
    ranks = list(range(len(windows))) if ranks is None else list(ranks)
    if len(ranks) != len(windows) or len(set(ranks)) != len(ranks):
        raise ValueError(f"ranks {ranks} do not name each of the {len(windows)} windows once")
    readings: dict[str, list[tuple[int, float, str]]] = defaultdict(list)  # domain -> (rank, joules, label)
    failures: dict[str, list[str]] = defaultdict(list)
    declared: dict[str, list[Domain]] = defaultdict(list)  # aggregate domain -> each rank's declaration of it
    notes: list[str] = []
    for rank, (host, window) in zip(ranks, windows):
        try:
            _check_host(host, f"rank {rank}: host")
        except DistributedError as exc:
            raise ValueError(str(exc)) from None
        for domain in window.domains:
            if "/" in domain:
                raise ValueError(f"rank {rank}: domain {domain!r} already carries a host prefix; merge() takes "
                                 f"the windows of single processes")
        # Device domains of this window that share one id cannot be told apart by it.
        ids = Counter((d.device_class, d.device_id) for d in window.domains.values() if d.scope == DEVICE)
        named: dict[str, str] = {}
        for domain, declaration in window.domains.items():
            shared = ids[(declaration.device_class, declaration.device_id)] > 1
            named[domain], note = _aggregate_domain(host, rank, declaration, shared)
            if note:
                notes.append(note)
        for domain, declaration in window.domains.items():
            inside = tuple(named.get(c, f"{host}/{c}") for c in declaration.contains)
            declared[named[domain]].append(declaration.renamed(named[domain], inside))
        for domain, joules in window.energy_j.items():
            if not (isinstance(joules, (int, float)) and math.isfinite(joules) and joules >= 0):
                # Never a figure: fail the domain on every rank, saying which rank read what.
                failures[named[domain]].append(f"rank {rank}: read {joules!r} J, not a finite non-negative figure")
                continue
            readings[named[domain]].append((rank, joules, window.domains[domain].provenance))
        for domain, reason in window.failed.items():
            failures[named[domain]].append(f"rank {rank}: {reason}")

    energy_j: dict[str, float] = {}
    for key in sorted(readings):
        if key in failures:
            continue
        values = readings[key]
        energy_j[key] = max(joules for _, joules, _ in values)
        low = min(joules for _, joules, _ in values)
        if len(values) > 1 and energy_j[key] > 0 and energy_j[key] - low > MISALIGNED_FRACTION * energy_j[key]:
            notes.append(f"{key}: ranks {', '.join(str(r) for r, _, _ in values)} read {low:.6g} to "
                         f"{energy_j[key]:.6g} J: their windows were not aligned; the aggregate takes the largest")
    failed = {key: "; ".join(reasons) for key, reasons in sorted(failures.items())}
    domains: dict[str, Domain] = {}
    for key in (*energy_j, *failed):
        domains[key], note = _merged_declaration(key, declared[key], readings.get(key, ()))
        if note:
            notes.append(note)

    measurements = [w for _, w in windows]
    flop_counts = [w.flops for w in measurements]
    flops: int | None = None
    if all(f is not None for f in flop_counts):
        flops = sum(flop_counts)  # type: ignore[arg-type]
    elif any(f is not None for f in flop_counts):
        missing = [str(r) for r, f in zip(ranks, flop_counts) if f is None]
        notes.append(f"ranks {', '.join(missing)} counted no FLOPs: the aggregate has none rather than a partial sum")
    uncounted: dict[str, int] = defaultdict(int)
    for window in measurements:
        for op, calls in window.uncounted_ops.items():
            uncounted[op] += calls
    warnings = [f"rank {rank}: {text}" for rank, window in zip(ranks, measurements) for text in window.warnings]
    names = list(dict.fromkeys(w.name for w in measurements))

    def build() -> Measurement:
        return Measurement(name="|".join(names), duration_s=max(w.duration_s for w in measurements),
                           energy_j=energy_j, flops=flops, uncounted_ops=dict(uncounted), failed=failed,
                           warnings=tuple(warnings + list(dict.fromkeys(notes))),
                           start_time_s=min(w.start_time_s for w in measurements), domains=domains)
    merged = build()
    while True:  # each pass fails one domain, so it ends
        try:
            merged.total_energy_j
            return merged
        except OverflowError:
            # A total beyond a float: its largest figure fails with the reason (the first name of a tie), and
            # the total is taken again; the call and every other figure stand.
            key = min(merged.total_domains, key=lambda d: (-energy_j[d], d))
            failed[key] = f"{energy_j.pop(key):.6g} J: with the other hosts' figures the total would overflow a float"
            failed = dict(sorted(failed.items()))
            merged = build()


def _aggregate_domain(host: str, rank: int, declaration: Domain, shared_id: bool) -> tuple[str, str | None]:
    """The aggregate's name for one rank's domain (by its scope), and a warning when it cannot be matched."""
    name = declaration.name
    if declaration.scope == HOST:
        return f"{host}/{name}", None
    if declaration.scope == DEVICE:
        device = declaration.device_id
        if device and not shared_id:
            # An old-style MIG UUID ("MIG-GPU-x/1/0") holds "/", which would read as a host prefix.
            return f"{host}/{declaration.device_class}:{device.replace('/', ':')}", None
        key = f"{host}/{name}:rank{rank}"
        if device:
            why = f"other domains of this rank share its device id {device!r}"
        else:
            why = "no GPU UUID in its declaration" if declaration.device_class == GPU else "no device id"
        return key, f"{key}: {why}, so it cannot be matched with other ranks' and counts for this rank"
    return f"{host}/{name}:rank{rank}", None


def _merged_declaration(key: str, declarations: list[Domain], values: Sequence[tuple[int, float, str]]
                        ) -> tuple[Domain, str | None]:
    """One declaration for an aggregate domain from its ranks': the weakest provenance any rank read it with,
    the containment of all of them, the first device id in sorted order (and a warning when they differ)."""
    labels = [label for _, _, label in values] or [d.provenance for d in declarations]
    contains = tuple(dict.fromkeys(c for d in declarations for c in d.contains))
    ids = sorted({d.device_id for d in declarations if d.device_id})
    merged = replace(declarations[0], provenance=max(labels, key=PROVENANCES.index),  # max: weakest
                     device_id=ids[0] if ids else "", contains=contains)
    note = None
    if len(ids) > 1:
        note = f"{key}: ranks on one host name different devices for it ({', '.join(ids)}); counted once"
    return merged, note


def aggregate(measurement: Measurement, group: Any = None) -> Measurement:
    """Combine every rank's window into one Measurement; a collective over a torch.distributed group.

    Every rank of ``group`` must call it (with its own window's Measurement); every rank gets the same
    result. Cost: one ``all_gather_object`` of a small dict per rank, plus the merge.

    Args:
        measurement: This rank's window, as a Meter returned it.
        group: The process group (gloo or nccl); None means the default group. With nccl, set this
            rank's CUDA device first (``torch.cuda.set_device``), as ``all_gather_object`` requires.

    Returns:
        The aggregate (see ``merge``): domains keyed by host, host-wide counters and GPUs once.

    Raises:
        DistributedError: torch.distributed is unavailable or not initialised, or some rank passed
            something that is not a Measurement or has an unusable host id (raised on every rank).
    """
    try:
        import torch.distributed as dist
    except ImportError as exc:
        raise DistributedError(f"energymeter.distributed.aggregate needs torch.distributed: {exc}") from exc
    if not dist.is_available() or not dist.is_initialized():
        raise DistributedError("torch.distributed is not initialised: call torch.distributed.init_process_group() "
                               "(torchrun sets up its environment) on every rank before aggregate()")
    rank = dist.get_rank()
    payload: dict[str, Any] = {"rank": rank}
    try:
        payload["host"] = host_id()
        if not isinstance(measurement, Measurement):
            raise DistributedError(f"aggregate() takes a Measurement, not {type(measurement).__name__}")
        payload["measurement"] = measurement.to_dict()
    except DistributedError as exc:
        payload["error"] = str(exc)  # sent, so that every rank raises instead of waiting in the collective
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, payload, group=group)
    errors = [f"rank {p['rank']}: {p['error']}" for p in gathered if "error" in p]
    if errors:
        raise DistributedError("aggregate() failed: " + "; ".join(errors))
    try:
        return merge([(p["host"], Measurement.from_dict(p["measurement"])) for p in gathered],
                     ranks=[p["rank"] for p in gathered])
    except ValueError as exc:
        raise DistributedError(f"aggregate() cannot merge the ranks' windows: {exc}") from exc


__all__ = ["BOOT_ID_PATH", "HOST_ID_ENV", "MISALIGNED_FRACTION", "DistributedError", "aggregate", "host_id", "merge"]
