"""What a result was computed with: the toolkit's and its libraries' releases, Python, the CPU,
memory and GPU. Every report records it (the features stage's ``summary.json``, ``results.json``,
``ablations.json``, the sampler's and fine-tuning's ``metrics.json``, the benchmarks' JSON), so figures compared across machines or
months say where they came from; ``nsnet --version`` prints it. Releases are read from the
installed packages' metadata, without importing them (torch takes about 2 s to import)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import pipeline

# The libraries a result depends on, by their distribution names.
LIBRARIES = ("torch", "torchvision", "timm", "onnxruntime", "numpy", "scikit-learn", "zarr", "h5py", "decord", "av")


def library_versions() -> dict[str, str | None]:
    """The installed release of each of :data:`LIBRARIES` (None where one is not installed)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_name() -> str:
    """The CPU's model name as Linux gives it (``/proc/cpuinfo``), else what Python knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any = "cpu") -> dict[str, Any]:
    """The toolkit's release, Python, the platform, the CPU (its name and the cores this process
    may use), memory in GiB, the GPU's name where ``device`` is a CUDA device (None otherwise),
    and :func:`library_versions`."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nsnet": pipeline.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(memory, 1),
        "gpu": _gpu_name(device),
        "libraries": library_versions(),
    }


def _gpu_name(device: Any) -> str | None:
    if not str(device).startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def describe(env: dict[str, Any]) -> str:
    """:func:`environment` in two lines: the machine, then the releases."""
    machine = f"{env['cpu']}, {env['cores']} cores, {env['memory_gib']:.0f} GiB" + (f", {env['gpu']}" if env["gpu"] else "")
    releases = ", ".join(f"{name} {version}" for name, version in env["libraries"].items() if version)
    return f"nsnet {env['nsnet']} on Python {env['python']}, {env['platform']}; {machine}\n{releases}"
