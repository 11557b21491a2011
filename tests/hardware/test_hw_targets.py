import pytest
import torch

from hwsearch.errors import SpecError
from hwsearch.hardware import (
    Target,
    available_targets,
    parse_target,
    parse_target_name,
    target_kind,
)
from hwsearch.hardware.targets import CPU


def test_cpu_parses_case_and_space_insensitively() -> None:
    for name in ("cpu", " CPU "):
        target = parse_target(name)
        assert target == Target(name="cpu", kind="cpu", device_index=None)
        assert target.device == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "", "tpu:0"])
def test_malformed_names_are_rejected_with_field_and_name(name: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_target(name)
    assert info.value.field == "target"
    assert repr(name) in info.value.reason
    assert "expected 'cpu' or 'cuda:N'" in info.value.reason
    assert str(info.value).startswith("target: ")


def test_non_string_is_rejected() -> None:
    with pytest.raises(SpecError) as info:
        parse_target(0)  # type: ignore[arg-type]
    assert info.value.field == "target"


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_cuda_says_so() -> None:
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(SpecError) as info:
            parse_target(name)
        assert info.value.field == "target"
        assert "CUDA is not available" in info.value.reason
        assert repr(name) in info.value.reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_indices_in_and_out_of_range() -> None:
    count = torch.cuda.device_count()
    assert parse_target("cuda") == Target(name="cuda:0", kind="cuda", device_index=0)
    assert parse_target(f"cuda:{count - 1}").device_index == count - 1
    with pytest.raises(SpecError) as info:
        parse_target(f"cuda:{count}")
    assert "out of range" in info.value.reason


def test_available_targets_lists_cpu_first_and_each_gpu() -> None:
    targets = available_targets()
    assert targets[0].kind == "cpu"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = [t.name for t in targets if not t.name.startswith("ort:")]
    assert devices[1:] == [f"cuda:{i}" for i in range(gpus)]
    # ONNX Runtime's CPU provider comes with the onnxruntime dependency
    assert "ort:cpu" in [t.name for t in targets]
    # every listed target round-trips through parse_target
    assert [parse_target(t.name) for t in targets] == targets


def test_names_parse_without_the_device_and_say_what_they_need() -> None:
    """A CPU-only head reads a GPU target; the device is checked where the candidate runs."""
    target = parse_target_name("CUDA:3")
    assert target == Target(name="cuda:3", kind="cuda", device_index=3)
    assert target_kind(target).resources(target) == {"num_gpus": 1.0}
    assert target_kind(parse_target_name("cpu")).resources(CPU) == {}
    with pytest.raises(SpecError, match="expected 'cpu' or 'cuda:N'"):
        parse_target_name("tpu:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a spec for a GPU on a CPU-only machine")
def test_a_cpu_only_head_accepts_a_gpu_job_and_the_worker_refuses_it(tiny_spec: dict) -> None:
    from hwsearch.search.spec import parse_spec
    from hwsearch.workers import EvalTask, evaluate_safely

    spec = parse_spec({**tiny_spec, "target": "cuda:0"})
    assert spec.target_name == "cuda:0"
    outcome = evaluate_safely(
        EvalTask(1, "mlp", {"depth": 1, "width": [8]}, "h", "cuda:0", 0, kind="train")
    )
    assert outcome.error is not None and "CUDA is not available" in outcome.error
