"""Export of a user's candidate from its stored weights (no compression or fine-tuning
again): the weights go into ``build(config)``, and the user's ``evaluate`` runs once on the
reloaded model so that export can compare its quality with the stored one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwsearch.errors import NotFoundError
from hwsearch.workers.kinds import Rebuilt, RuntimeSource
from hwsearch.workers.python_weights import weights_digest

if TYPE_CHECKING:
    from hwsearch.models.custom.pipeline import UserModel


def reload(
    code: UserModel,
    config: Mapping[str, Any],
    settings: Mapping[str, Any],
    seed: int,
    metrics: Mapping[str, Any],
) -> Rebuilt | None:
    """The candidate's model with its stored weights, or None where none were stored."""
    import torch

    from hwsearch.artifacts import ArtifactStore
    from hwsearch.models.custom.compress import bake
    from hwsearch.models.custom.context import Context
    from hwsearch.models.custom.family import split_config
    from hwsearch.models.custom.pipeline import (
        calibration_batches,
        checked_metrics,
        checked_model,
    )
    from hwsearch.models.custom.rules import resolve_rules
    from hwsearch.models.custom.weights import load_weights

    ref = weights_digest(metrics)
    if ref is None:
        return None
    root, digest = ref
    store = ArtifactStore(root)
    if not store.exists(digest):
        raise NotFoundError(
            f"the candidate's weights (artifact {digest}) are no longer in {root}: with "
            "evaluation.keep_weights 'front' (the default) a finished job keeps only its "
            "front's weights; export a candidate on the front, or run with keep_weights: all"
        )
    build, layers = split_config(config)
    torch.manual_seed(seed)
    model = load_weights(checked_model(code.build(dict(build))), store.get(digest))
    model.eval()
    rules = resolve_rules(model, layers)
    context = Context(
        seed=seed,
        device=torch.device("cpu"),
        config=build,
        logger=logging.getLogger("hwsearch.user"),
        stage="evaluate",
        compression={k: v.as_dict() for k, v in rules.items()},
    )
    torch.manual_seed(seed)
    quality = checked_metrics(code.evaluate(model, context), code.metrics)

    def evaluate(deployed: torch.nn.Module) -> dict[str, float]:
        torch.manual_seed(seed)
        return checked_metrics(code.evaluate(deployed, context), code.metrics)

    limit = int(settings.get("calibration_batches", 8))
    source = RuntimeSource(
        model=bake(model).cpu().eval(),
        bits={name: (rule.weight_bits, rule.act_bits) for name, rule in rules.items()},
        calibration=calibration_batches(code, context.at("calibrate"), limit, seed),
        example=code.example(1),
        evaluate=evaluate,
    )
    stored = metrics.get("latency_ms")
    kernel = (getattr(stored, "details", {}) or {}).get("kernel_path", "fp32")
    return Rebuilt(
        weights=model,
        deployed=model,
        portable=model,
        example=code.example(1),
        kernel_path=str(kernel),
        how_built=f"the candidate's stored weights (artifact {digest} in {root}), reloaded "
        "into build(config) without compressing or fine-tuning again",
        quality=quality,
        runtime_source=source,
    )
