"""What GPUs the local executor offers: real ones from ``nvidia-smi``, or logical ones.

A development machine or a CI runner has no NVIDIA GPU, yet the whole platform
(scheduling, quotas, accounting) should run on it. Logical GPUs are just device numbers on
made-up nodes ``local-0``, ``local-1``, ...; the scheduler treats them like real ones and
jobs see them in ``CUDA_VISIBLE_DEVICES``, but nothing enforces them.

Spec format for logical nodes: comma-separated ``TYPE:GPUS[xNODES]``, e.g.
``"A100:4,H100:4"`` (two nodes of four GPUs) or ``"H100:8x4"`` (four nodes of eight).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass

from axcenter.executors.base import IDLE_UTIL_PCT, GpuUsage, NodeInventory

__all__ = [
    "DEFAULT_LOGICAL_SPEC",
    "GpuSampler",
    "detect_gpus",
    "local_inventory",
    "parse_gpu_name",
    "parse_logical_spec",
    "parse_nvidia_smi",
    "parse_utilization",
]

log = logging.getLogger(__name__)

DEFAULT_LOGICAL_SPEC = "H100:8"  # one logical node of eight H100s

MAX_GPUS_PER_NODE = 64
MAX_NODES_PER_PART = 1024
_TYPE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
_TYPE_RE = re.compile(_TYPE)
_SPEC_PART_RE = re.compile(rf"(?P<type>{_TYPE}):(?P<gpus>[0-9]+)(?:x(?P<nodes>[0-9]+))?")
# Datacenter model names: H100, A100, V100, L40S, L4, T4, A10G, B200, GH200, ...
_MODEL_RE = re.compile(r"[A-Z]{1,2}[0-9]{1,4}[A-Z]?")
_VENDOR_RE = re.compile(r"\b(?:NVIDIA|Tesla)\b", re.IGNORECASE)
_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,name,memory.total",
    "--format=csv,noheader,nounits",
)


def parse_gpu_name(name: str) -> str:
    """A short GPU type from the name ``nvidia-smi`` reports, for pricing and quotas.

    ``"NVIDIA H100 80GB HBM3"`` -> ``"H100"``, ``"NVIDIA A100-SXM4-80GB"`` -> ``"A100"``,
    ``"Tesla V100-SXM2-32GB"`` -> ``"V100"``, ``"NVIDIA L40S"`` -> ``"L40S"``. Other
    names keep everything but the vendor words, spaces turned into ``-``
    (``"NVIDIA GeForce RTX 4090"`` -> ``"GeForce-RTX-4090"``).
    """
    rest = " ".join(_VENDOR_RE.sub(" ", name).split())
    if rest:
        head = rest.split(" ", 1)[0].split("-", 1)[0]
        if _MODEL_RE.fullmatch(head):
            return head
    short = re.sub(r"[^A-Za-z0-9._-]", "-", rest.replace(" ", "-")).strip("-._")
    return short[:32] or "GPU"


def parse_nvidia_smi(output: str, hostname: str, cpus: int, memory_mb: int) -> list[NodeInventory]:
    """Turn ``index, name, memory`` CSV lines into this host's node (empty if no GPU).

    A node holds one GPU type. With mixed models only the most numerous one is offered
    (a warning says so), and ``device_ids`` keeps its real indices so that
    ``CUDA_VISIBLE_DEVICES`` still points at the right devices.
    """
    by_type: dict[str, list[int]] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        gpu_type = parse_gpu_name(",".join(parts[1:-1]) if len(parts) > 2 else parts[1])
        by_type.setdefault(gpu_type, []).append(int(parts[0]))
    if not by_type:
        return []
    counts = Counter({t: len(ix) for t, ix in by_type.items()})
    gpu_type = counts.most_common(1)[0][0]  # ties: the type seen first
    if len(by_type) > 1:
        log.warning(
            "mixed GPU models on %s (%s); offering only the %d %s",
            hostname,
            ", ".join(f"{n} x {t}" for t, n in counts.items()),
            counts[gpu_type],
            gpu_type,
        )
    indices = tuple(sorted(by_type[gpu_type]))
    return [
        NodeInventory(
            name=hostname,
            gpu_type=gpu_type,
            gpu_count=len(indices),
            cpus=cpus,
            memory_mb=memory_mb,
            logical=False,
            device_ids=() if indices == tuple(range(len(indices))) else indices,
        )
    ]


def detect_gpus() -> list[NodeInventory] | None:
    """This host's NVIDIA GPUs as one node, or None if there are none (or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(_SMI_QUERY, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("nvidia-smi failed: %s", e)
        return None
    if done.returncode != 0:
        log.warning("nvidia-smi exited %d: %s", done.returncode, done.stderr.strip()[:200])
        return None
    try:
        nodes = parse_nvidia_smi(
            done.stdout, socket.gethostname(), os.cpu_count() or 1, host_memory_mb()
        )
    except ValueError as e:
        log.warning("cannot read nvidia-smi output: %s", e)
        return None
    return nodes or None


def host_memory_mb() -> int:
    """Total memory of this machine in MiB (``MemTotal`` of /proc/meminfo)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def parse_logical_spec(
    spec: str, cpus: int, memory_mb: int, prefix: str = "local"
) -> list[NodeInventory]:
    """Logical nodes ``local-0``, ``local-1``, ... (``PREFIX-N``) from a spec like
    ``"H100:8x4"``.

    ``cpus`` and ``memory_mb`` are per node. Raises ValueError naming the bad part.
    """
    if cpus < 1 or memory_mb < 1:
        raise ValueError(f"cpus and memory_mb must be positive, got {cpus} and {memory_mb}")
    nodes: list[NodeInventory] = []
    for raw in spec.split(","):
        part = raw.strip()
        m = _SPEC_PART_RE.fullmatch(part)
        if m is None:
            if ":" in part and not _TYPE_RE.fullmatch(part.split(":", 1)[0]):
                why = f"GPU type must match {_TYPE}"
            else:
                why = "expected TYPE:GPUS or TYPE:GPUSxNODES, e.g. H100:8 or H100:8x4"
            raise ValueError(f"bad GPU spec {part!r}: {why}")
        gpus = int(m["gpus"])
        count = int(m["nodes"]) if m["nodes"] is not None else 1
        if not 1 <= gpus <= MAX_GPUS_PER_NODE:
            raise ValueError(f"bad GPU spec {part!r}: GPUs per node must be 1..{MAX_GPUS_PER_NODE}")
        if not 1 <= count <= MAX_NODES_PER_PART:
            raise ValueError(f"bad GPU spec {part!r}: node count must be 1..{MAX_NODES_PER_PART}")
        first = len(nodes)
        nodes.extend(
            NodeInventory(
                name=f"{prefix}-{first + i}",
                gpu_type=m["type"],
                gpu_count=gpus,
                cpus=cpus,
                memory_mb=memory_mb,
                logical=True,
            )
            for i in range(count)
        )
    return nodes


def local_inventory(
    spec: str | None, cpus: int | None = None, memory_mb: int | None = None, prefix: str = "local"
) -> list[NodeInventory]:
    """The nodes a local executor offers.

    With no spec, the real GPUs if ``nvidia-smi`` finds any, else logical nodes from
    ``DEFAULT_LOGICAL_SPEC``. A spec always means logical nodes, even on a GPU machine.
    ``cpus``/``memory_mb`` default to the whole machine; for logical nodes they are per
    node, so several logical nodes overcommit the host: they only exist for scheduling.
    """
    cpus = cpus if cpus is not None else os.cpu_count() or 1
    memory_mb = memory_mb if memory_mb is not None else host_memory_mb()
    if spec is None:
        real = detect_gpus()
        if real:
            return [
                NodeInventory(
                    name=n.name,
                    gpu_type=n.gpu_type,
                    gpu_count=n.gpu_count,
                    cpus=cpus,
                    memory_mb=memory_mb,
                    logical=False,
                    device_ids=n.device_ids,
                )
                for n in real
            ]
        spec = DEFAULT_LOGICAL_SPEC
    return parse_logical_spec(spec, cpus, memory_mb, prefix)


# -- utilisation of the GPUs runs hold ------------------------------------------------------

_UTIL_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,utilization.gpu,memory.used",
    "--format=csv,noheader,nounits",
)


def parse_utilization(output: str) -> dict[int, tuple[int, int]]:
    """``index, utilization.gpu, memory.used`` CSV lines -> {index: (percent, MiB)}.
    A device that reports ``[N/A]`` or ``[Not Supported]`` is left out."""
    found: dict[int, tuple[int, int]] = {}
    for line in output.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            found[int(parts[0])] = (int(float(parts[1])), int(float(parts[2])))
        except ValueError:
            continue
    return found


@dataclass(slots=True)
class _Tally:
    devices: tuple[int, ...]
    samples: int = 0
    util_sum: int = 0
    util_max: int = 0
    memory_max: int = 0
    idle: int = 0


class GpuSampler:
    """Samples the utilisation of the GPUs runs hold with one ``nvidia-smi`` call every
    ``every_s`` seconds (a thread), and gives each run's summary (``GpuUsage``) when it
    ends. Only the part of a run this process watched is summarised: a run adopted after
    a restart is sampled from then on."""

    def __init__(self, every_s: float = 10.0, command: tuple[str, ...] = _UTIL_QUERY) -> None:
        self.every_s = every_s
        self._command = command
        self._lock = threading.Lock()
        self._runs: dict[str, _Tally] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="axc-gpu-sampler", daemon=True)

    @classmethod
    def for_nodes(cls, nodes: list[NodeInventory], every_s: float = 10.0) -> GpuSampler | None:
        """A started sampler where some node has real GPUs and ``nvidia-smi`` is on PATH."""
        if all(n.logical for n in nodes) or shutil.which("nvidia-smi") is None:
            return None
        sampler = cls(every_s)
        sampler._thread.start()
        return sampler

    def track(self, run_id: str, devices: tuple[int, ...]) -> None:
        if devices:
            with self._lock:
                self._runs.setdefault(run_id, _Tally(devices))

    def finish(self, run_id: str) -> GpuUsage | None:
        """The run's summary (None: never sampled); it is no longer tracked."""
        with self._lock:
            t = self._runs.pop(run_id, None)
        if t is None or not t.samples:
            return None
        return GpuUsage(
            samples=t.samples,
            util_mean_pct=(2 * t.util_sum + t.samples) // (2 * t.samples),
            util_max_pct=t.util_max,
            memory_max_mib=t.memory_max,
            idle_samples=t.idle,
            sample_s=self.every_s,
        )

    def sample_once(self) -> bool:
        """One sampling of every tracked run's GPUs; False if ``nvidia-smi`` failed."""
        with self._lock:
            if not self._runs:
                return True
        try:
            done = subprocess.run(
                self._command, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode != 0:
            return False
        now = parse_utilization(done.stdout)
        with self._lock:
            for t in self._runs.values():
                for d in t.devices:
                    if d not in now:
                        continue
                    util, memory = now[d]
                    t.samples += 1
                    t.util_sum += util
                    t.util_max = max(t.util_max, util)
                    t.memory_max = max(t.memory_max, memory)
                    t.idle += util <= IDLE_UTIL_PCT
        return True

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if not self.sample_once():
                log.debug("nvidia-smi failed; GPU utilisation not sampled this time")
