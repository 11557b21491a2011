import os
import platform
import time

import torch

from hwsearch.hardware import parse_target
from hwsearch.hardware.environment import environment

KEYS = {
    "target",
    "device_kind",
    "cpu_model",
    "logical_cores",
    "usable_cores",
    "os",
    "platform",
    "machine",
    "python_version",
    "torch_version",
    "threads",
    "quantized_engine",
}


def test_cpu_environment_describes_this_process() -> None:
    env = environment(parse_target("cpu"), threads=3)
    assert set(env) == KEYS
    assert env["target"] == "cpu"
    assert env["threads"] == 3
    assert env["torch_version"] == torch.__version__
    assert env["python_version"] == platform.python_version()
    assert env["logical_cores"] == os.cpu_count()
    assert env["quantized_engine"] == torch.backends.quantized.engine
    assert isinstance(env["cpu_model"], str) and env["cpu_model"]


def test_quantized_engine_is_read_at_call_time_and_records_are_independent() -> None:
    target = parse_target("cpu")
    before = torch.backends.quantized.engine
    other = next(e for e in torch.backends.quantized.supported_engines if e not in (before, "none"))
    try:
        torch.backends.quantized.engine = other
        env = environment(target, threads=1)
    finally:
        torch.backends.quantized.engine = before
    assert env["quantized_engine"] == other
    env["cpu_model"] = "changed"
    assert environment(target, threads=1)["cpu_model"] != "changed"


def test_slow_parts_are_cached() -> None:
    target = parse_target("cpu")
    environment(target, threads=1)
    start = time.perf_counter()
    for _ in range(20):
        environment(target, threads=1)
    assert time.perf_counter() - start < 0.05
