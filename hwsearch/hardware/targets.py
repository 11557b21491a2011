"""Deployment targets: the devices a candidate can be measured on, by kind.

A target is named like ``torch.device``: ``"cpu"`` or ``"cuda:N"`` (``"cuda"`` means
``"cuda:0"``); ``"ort:cpu"`` and ``"ort:cuda:N"`` run candidates in ONNX Runtime (the
runtime: :mod:`hwsearch.hardware.ort`); plug-ins add kinds of their own
(:func:`register_target_kind`). Each
:class:`TargetKind` parses its names, says what an executor must reserve to run a candidate
on it (:meth:`TargetKind.resources`), which energy meter measures it, and whether the device
exists *here* (:meth:`TargetKind.check_here`). That last check runs where the candidate is
evaluated, not where the spec is read, so a CPU-only head can submit a job for a GPU worker.
Energy and carbon profiles are attached elsewhere (:mod:`hwsearch.hardware.profiles`).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:  # torch is imported where a device is looked at, not to parse a name
    import torch

from hwsearch.errors import SpecError

#: What a target's profile looks like: measured on a CPU or a GPU, or read from a table.
ProfileKind = Literal["cpu", "cuda", "table"]

_CUDA_NAME = re.compile(r"cuda(?::(\d+))?")


@dataclass(frozen=True)
class Target:
    """One device.

    ``name`` is the canonical spelling (``"cpu"``, ``"cuda:0"``); ``kind`` names its
    :class:`TargetKind`; ``device_index`` is ``None`` for the CPU; ``torch_device`` is the
    device models run on where it differs from ``name`` (targets of plug-in kinds).
    """

    name: str
    kind: str
    device_index: int | None = None
    torch_device: str | None = None

    @property
    def device(self) -> torch.device:
        """The ``torch.device`` to put models and inputs on."""
        import torch

        return torch.device(self.torch_device or self.name)


class TargetKind(abc.ABC):
    """A kind of device: how its names read, what it needs, how its energy is measured."""

    #: The kind's name (``Target.kind``).
    name: ClassVar[str]
    #: How its names are written, for error messages (``'cuda:N'``).
    syntax: ClassVar[str]
    #: The kind of profile of its devices (factors for energy and carbon).
    profile_kind: ClassVar[ProfileKind] = "cpu"
    #: What runs candidates on it: ``"torch"`` (PyTorch, the default) or another runtime
    #: (``"onnxruntime"``, :mod:`hwsearch.hardware.ort`); evaluation kinds say which they
    #: can serve (:attr:`hwsearch.workers.kinds.EvaluationKind.runtimes`).
    runtime: ClassVar[str] = "torch"

    @abc.abstractmethod
    def parse(self, text: str) -> Target | None:
        """The target named ``text`` (stripped, lower case) if it is of this kind, else None.
        Says nothing about whether the device exists here."""

    def check_here(self, target: Target) -> None:  # noqa: B027 - a device always present
        """Raise :class:`SpecError` (field ``target``) if ``target`` is not on this machine."""

    def value_problem(self, knob: str, value: Any) -> str | None:
        """Why this kind's devices cannot run ``value`` of the space's knob ``knob`` (e.g.
        a bit-width without a kernel), or None (the default). Checked when the spec is read,
        naming the knob's field."""
        return None

    def resources(self, target: Target) -> dict[str, float]:
        """What an executor reserves to evaluate a candidate on ``target`` (Ray resource
        names: ``{"num_gpus": 1}``); an empty dict: a CPU slot."""
        return {}

    def meter(self, profile: Any, target: Target) -> Any:
        """An energy meter (:class:`hwsearch.hardware.energy.EnergyMeter`) of ``target``
        with its :class:`~hwsearch.hardware.profiles.TargetProfile`, or None (the default)
        to let :func:`hwsearch.hardware.energy.meter_for` choose by the profile's
        ``meter`` setting. (Typed loosely: targets sit below profiles and energy.)"""
        return None


class CpuKind(TargetKind):
    name = "cpu"
    syntax = "'cpu'"
    profile_kind = "cpu"

    def parse(self, text: str) -> Target | None:
        return CPU if text == "cpu" else None


class CudaKind(TargetKind):
    """NVIDIA GPUs, ``cuda:N``; one candidate at a time per GPU."""

    name = "cuda"
    syntax = "'cuda:N'"
    profile_kind = "cuda"

    def parse(self, text: str) -> Target | None:
        match = _CUDA_NAME.fullmatch(text)
        if match is None:
            return None
        index = int(match.group(1) or 0)
        return Target(name=f"cuda:{index}", kind="cuda", device_index=index)

    def check_here(self, target: Target) -> None:
        import torch

        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
            raise SpecError(
                field="target",
                reason=f"{target.name!r} asks for a GPU but CUDA is not available here "
                f"(torch {torch.__version__}, {built})",
            )
        count = torch.cuda.device_count()
        if (target.device_index or 0) >= count:
            raise SpecError(
                field="target",
                reason=f"{target.name!r}: device index {target.device_index} out of range; "
                f"this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})",
            )

    def resources(self, target: Target) -> dict[str, float]:
        return {"num_gpus": 1.0}


CPU = Target(name="cpu", kind="cpu", device_index=None)

_KINDS: dict[str, TargetKind] = {}


def register_target_kind(kind: TargetKind) -> TargetKind:
    """Register ``kind`` (built-ins and plug-ins); names are tried in registration order."""
    if not isinstance(kind, TargetKind):
        raise TypeError(f"{kind!r} is not a TargetKind")
    _KINDS[kind.name] = kind
    return kind


def target_kind(target: Target | str) -> TargetKind:
    """The kind of ``target`` (a :class:`Target` or its kind's name)."""
    from hwsearch.errors import UnknownNameError

    name = target.kind if isinstance(target, Target) else target
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownNameError("target kind", name, _KINDS) from None


def parse_target_name(name: str) -> Target:
    """Parse a device target's name, without looking for the device.

    Raises :class:`SpecError` (field ``target``) for a name no registered kind reads.
    """
    if not isinstance(name, str):
        raise SpecError(field="target", reason=f"must be a string such as 'cpu', got {name!r}")
    text = name.strip().lower()
    for kind in _KINDS.values():
        target = kind.parse(text)
        if target is not None:
            return target
    expected = " or ".join(k.syntax for k in _KINDS.values())
    raise SpecError(field="target", reason=f"unknown target {name!r}; expected {expected}")


def is_device_name(name: str) -> bool:
    """Whether ``name`` reads as a device target of some registered kind."""
    try:
        parse_target_name(name)
    except SpecError:
        return False
    return True


def parse_target(name: str) -> Target:
    """Parse a target name and check that the device exists here (where a candidate runs).

    Raises :class:`SpecError` (field ``target``) for a malformed name, and for ``cuda:N``
    when CUDA is not available or ``N`` is not a device index of this machine.
    """
    target = parse_target_name(name)
    try:
        target_kind(target).check_here(target)
    except SpecError as exc:  # in the user's spelling of the name
        raise SpecError("target", exc.reason.replace(repr(target.name), repr(name), 1)) from None
    return target


def available_targets() -> list[Target]:
    """The CPU, then every visible CUDA device in index order, then the ONNX Runtime
    targets whose execution provider is installed (``ort:cpu``, ``ort:cuda:N``)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    targets = [CPU]
    targets.extend(Target(name=f"cuda:{i}", kind="cuda", device_index=i) for i in range(gpus))
    providers = available_providers()
    if CPU_PROVIDER in providers:
        targets.append(ORT_CPU)
    if CUDA_PROVIDER in providers:
        targets.extend(
            Target(name=f"ort:cuda:{i}", kind="ort-cuda", device_index=i, torch_device="cpu")
            for i in range(gpus)
        )
    return targets


# --------------------------------------------------------------------------------------------
# ONNX Runtime (the runtime itself: :mod:`hwsearch.hardware.ort`)

ORT_RUNTIME = "onnxruntime"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def act_bits_problem(value: Any) -> str | None:
    """Why ONNX Runtime cannot run activations of ``value`` bits, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 8:
        return (
            f"act_bits {value} cannot run on ONNX Runtime: it quantizes activations to 8 bits "
            "(static int8, QDQ) or keeps them float; use 8, 16 or 32"
        )
    return None


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers in this process ([] without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OrtKind(TargetKind):
    """``ort:cpu``: ONNX Runtime's CPU execution provider on this machine's CPU."""

    name = "ort"
    syntax = "'ort:cpu'"
    profile_kind: ClassVar[ProfileKind] = "cpu"
    runtime = ORT_RUNTIME
    #: the execution provider its sessions run on
    provider: ClassVar[str] = CPU_PROVIDER

    def parse(self, text: str) -> Target | None:
        return ORT_CPU if text == "ort:cpu" else None

    def check_here(self, target: Target) -> None:
        providers = available_providers()
        if self.provider not in providers:
            raise SpecError(
                "target",
                f"{target.name!r} needs ONNX Runtime's {self.provider}; available here: "
                f"{', '.join(providers) or 'none (onnxruntime is not installed)'}",
            )

    def value_problem(self, knob: str, value: Any) -> str | None:
        # a built-in family's knob ``act_bits``, or a layer's ``layers[<glob>].act_bits``
        return act_bits_problem(value) if knob.rsplit(".", 1)[-1] == "act_bits" else None


class OrtCudaKind(OrtKind):
    """``ort:cuda[:N]``: ORT's CUDA execution provider on GPU N (one candidate at a time)."""

    name = "ort-cuda"
    syntax = "'ort:cuda:N'"
    profile_kind = "cuda"
    provider = CUDA_PROVIDER

    def parse(self, text: str) -> Target | None:
        if text == "ort:cuda":
            text = "ort:cuda:0"
        head, _, index = text.rpartition(":")
        if head != "ort:cuda" or not index.isdigit():
            return None
        return Target(name=text, kind=self.name, device_index=int(index), torch_device="cpu")

    def check_here(self, target: Target) -> None:
        super().check_here(target)
        import torch

        if torch.cuda.is_available() and (target.device_index or 0) >= torch.cuda.device_count():
            raise SpecError(
                "target",
                f"{target.name!r}: device index {target.device_index} out of range; this "
                f"machine has {torch.cuda.device_count()} CUDA device(s)",
            )

    def resources(self, target: Target) -> dict[str, float]:
        return {"num_gpus": 1.0}


ORT_CPU = Target(name="ort:cpu", kind="ort", device_index=None, torch_device="cpu")

register_target_kind(CpuKind())
register_target_kind(CudaKind())
register_target_kind(OrtKind())
register_target_kind(OrtCudaKind())
