"""The software and hardware environment a measurement was taken in.

Stored with every measured number as part of its provenance, so numbers from different
machines or library versions are never mixed up silently. The slow parts (py-cpuinfo takes
about a second) are looked up once per process.
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from hwsearch.hardware.targets import Target


def environment(target: Target, threads: int) -> dict[str, Any]:
    """Describe this machine and the target for a measurement run with ``threads`` threads.

    Keys: ``target``, ``device_kind``, ``cpu_model``, ``logical_cores``, ``usable_cores``
    (cores this process may run on), ``os``, ``platform``, ``machine``, ``python_version``,
    ``torch_version``, ``threads``, ``quantized_engine``; for a CUDA target also
    ``cuda_device_name``, ``cuda_capability``, ``cuda_total_memory_bytes``, ``cuda_version``
    (the CUDA runtime torch was built with) and ``cuda_driver_version`` (``None`` when
    ``pynvml`` is not installed).
    """
    record: dict[str, Any] = {"target": target.name, "device_kind": target.kind}
    record.update(_host())
    record["threads"] = threads
    record["quantized_engine"] = torch.backends.quantized.engine
    if target.device.type == "cuda":
        record.update(_cuda(target.device_index or 0))
    return record


@functools.cache
def _host() -> dict[str, Any]:
    # Returned dicts are copied into the record by ``update``, so the cached one stays intact.
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every OS
        usable = None
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.system(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }


def _cpu_model() -> str:
    try:
        import cpuinfo

        brand = cpuinfo.get_cpu_info().get("brand_raw")
        if brand:
            return str(brand)
    except Exception:  # py-cpuinfo probes in a subprocess and can fail in odd sandboxes
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.cache
def _cuda(index: int) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    return {
        "cuda_device_name": props.name,
        "cuda_capability": f"{props.major}.{props.minor}",
        "cuda_total_memory_bytes": int(props.total_memory),
        "cuda_version": torch.version.cuda,
        "cuda_driver_version": _driver_version(),
    }


def _driver_version() -> str | None:
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
        try:
            version = nvml.nvmlSystemGetDriverVersion()
        finally:
            nvml.nvmlShutdown()
    except Exception:  # pynvml missing or NVML unusable: the driver version stays unknown
        return None
    return version.decode() if isinstance(version, bytes) else str(version)
