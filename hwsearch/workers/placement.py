"""Where candidates run: the ``executor`` section of a spec and its CLI overrides.

``type`` picks the executor (``local``, ``pool``, ``ray``); the other fields are the Ray
executor's placement: what each candidate task asks of the cluster (``num_cpus``, custom
``resources``, a share ``num_gpus`` of a GPU), what each measurement actor holds (one whole
``gpu_resource`` and ``actor_resources``), and its timeouts and retries. ``gpu_resource``
names the resource that stands for a GPU: ``GPU`` on a real cluster, any custom resource
where a test or a cluster declares GPUs under another name.

::

    executor:
      type: ray
      address: auto
      resources: {hwsearch_worker: 1}    # candidate tasks run only on nodes offering it
      num_gpus: 0.25                     # four candidate tasks share a GPU
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["RAY_FIELDS", "ExecutorSettings"]

ExecutorType = Literal["local", "pool", "ray"]

#: Fields that only the Ray executor reads; set with another ``type`` they are refused.
RAY_FIELDS = (
    "address",
    "resources",
    "num_cpus",
    "num_gpus",
    "gpu_resource",
    "gpu_actors",
    "actor_resources",
    "timeout_s",
    "max_retries",
)


class ExecutorSettings(BaseModel):
    """The ``executor`` section: which executor, and where the Ray executor places work."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    type: ExecutorType | None = None  # None: the CLI's --executor, else local
    workers: int | None = Field(default=None, ge=1)
    address: str | None = Field(default=None, min_length=1)
    #: custom resources every candidate task asks for (``{hwsearch_worker: 1}``)
    resources: dict[str, float] = Field(default_factory=dict)
    num_cpus: float = Field(default=1.0, gt=0)
    #: the share of a GPU each candidate task holds (not the measurement actors, which hold
    #: a whole one): 0.25 puts four on a GPU; 0 holds none
    num_gpus: float = Field(default=0.0, ge=0)
    gpu_resource: str = Field(default="GPU", min_length=1)
    gpu_actors: int | None = Field(default=None, ge=1)
    actor_resources: dict[str, float] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=3600.0, gt=0)
    max_retries: int = Field(default=2, ge=0)

    @field_validator(*RAY_FIELDS)
    @classmethod
    def _ray_only(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind in ("local", "pool"):
            raise ValueError(f"only the ray executor reads {info.field_name}, not {kind!r}")
        return value

    @field_validator("resources", "actor_resources")
    @classmethod
    def _amounts(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for name, amount in value.items():
            if not name:
                raise ValueError("a resource needs a name")
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ValueError(
                    f"{name!r} is one of Ray's own resources: set num_cpus or num_gpus instead"
                )
            if not amount > 0:
                raise ValueError(f"{name}: the amount must be positive, got {amount!r}")
        return value

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ExecutorSettings:
        """``data`` validated, with :class:`~hwsearch.errors.SpecError` naming the field
        (``executor.<field>``) on bad input."""
        from pydantic import ValidationError

        from hwsearch.errors import SpecError

        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("executor", *first["loc"]))
            raise SpecError(where, str(first["msg"]).removeprefix("Value error, ")) from None

    def merged(self, **overrides: Any) -> ExecutorSettings:
        """These settings with the given fields replaced (the CLI's options win over the
        spec's); ``None`` values leave a field as it is."""
        data = self.model_dump(exclude_unset=True)
        data.update({k: v for k, v in overrides.items() if v is not None})
        if "type" in overrides and overrides["type"] not in (None, "ray"):
            for name in RAY_FIELDS:  # the spec's Ray placement does not apply elsewhere
                data.pop(name, None)
        return ExecutorSettings.parse(data)

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~hwsearch.workers.ray_executor.RayExecutor`."""
        return {
            "resources": dict(self.resources),
            "cpus_per_task": self.num_cpus,
            "gpus_per_task": self.num_gpus,
            "gpu_resource": self.gpu_resource,
            "gpu_actors": self.gpu_actors,
            "actor_resources": dict(self.actor_resources),
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
        }
