"""Which quantized CPU kernel path should materialise a user's layers? Measured, not assumed.

For a Linear stack (1024→1024→1024) and a Conv stack (64 channels, 3×3, 16×16 inputs), every
int8 path available here runs under the search's latency protocol (one thread): the maintained
ones (torchao ``quantize_`` configs, pt2e with the X86 inductor quantizer, hwsearch's own
weight-only kernels) and the deprecated ``torch.ao.quantization`` eager / FX ones. The figure
is the median latency and the ratio to fp32.

    python bench/byo_kernels.py [--batch 1,32] [--inductor]

``--inductor`` adds pt2e + ``torch.compile`` (tens of seconds of compilation per variant).
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings
from collections.abc import Callable

import torch
from torch import nn

from hwsearch.hardware import MeasureSettings, measure_latency, parse_target
from hwsearch.hardware.kernels.dispatch import QuantizedLinear

Build = Callable[[nn.Module, torch.Tensor], nn.Module]


def _torchao(config: str) -> Build:
    def build(model: nn.Module, x: torch.Tensor) -> nn.Module:
        import torchao.quantization as q

        q.quantize_(model, getattr(q, config)())
        return model

    return build


def _own(bits: int) -> Build:
    def build(model: nn.Module, x: torch.Tensor) -> nn.Module:
        for name, layer in list(model.named_children()):
            if isinstance(layer, nn.Linear):
                setattr(model, name, QuantizedLinear(layer, bits))
        return model

    return build


def _dynamic(model: nn.Module, x: torch.Tensor) -> nn.Module:
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def _fx_static(model: nn.Module, x: torch.Tensor) -> nn.Module:
    from torch.ao.quantization import QConfigMapping, get_default_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(model, QConfigMapping().set_global(get_default_qconfig("x86")), (x,))
    prepared(x)
    return convert_fx(prepared)


def _pt2e(compile_it: bool) -> Build:
    def build(model: nn.Module, x: torch.Tensor) -> nn.Module:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        exported = torch.export.export(model, (x,)).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        prepared(x)
        out = _Frozen(convert_pt2e(prepared))
        if compile_it:
            out = torch.compile(out)
            with torch.no_grad():
                out(x)
        return out

    return build


class _Frozen(nn.Module):
    """An exported graph refuses train() / eval(), which the protocol calls: ignore them."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> _Frozen:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--inductor", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    nets = {
        "linear": (
            nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024)),
            (1024,),
        ),
        "conv": (
            nn.Sequential(
                nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1)
            ),
            (64, 16, 16),
        ),
    }
    variants: dict[str, Build] = {
        "fp32": lambda m, x: m,
        "torchao Int8WeightOnly": _torchao("Int8WeightOnlyConfig"),
        "torchao Int8DynamicActivationInt8Weight": _torchao(
            "Int8DynamicActivationInt8WeightConfig"
        ),
        "hwsearch QuantizedLinear int8 (aten)": _own(8),
        "hwsearch QuantizedLinear int4 (aten)": _own(4),
        "torch.ao quantize_dynamic (deprecated)": _dynamic,
        "torch.ao FX static x86 (deprecated)": _fx_static,
        "pt2e X86InductorQuantizer, eager": _pt2e(False),
    }
    if args.inductor:
        variants["pt2e X86InductorQuantizer, torch.compile"] = _pt2e(True)
    target = parse_target("cpu")
    for net_name, (net, shape) in nets.items():
        net.eval()
        for batch in (int(b) for b in args.batch.split(",")):
            x = torch.randn(batch, *shape)
            base = None
            for name, build in variants.items():
                if net_name == "conv" and ("Linear" in name or "dynamic" in name or "Int8" in name):
                    continue
                try:
                    model = build(copy.deepcopy(net), x)
                    settings = MeasureSettings(batch_size=batch, threads=1, max_seconds=3.0)
                    ms = measure_latency(model, x, target, settings).median_ms
                except Exception as exc:
                    print(
                        json.dumps(
                            {
                                "net": net_name,
                                "batch": batch,
                                "variant": name,
                                "error": f"{type(exc).__name__}: {exc}"[:200],
                            }
                        )
                    )
                    continue
                base = ms if name == "fp32" else base
                print(
                    json.dumps(
                        {
                            "net": net_name,
                            "batch": batch,
                            "variant": name,
                            "median_ms": round(ms, 4),
                            "speedup": round((base or ms) / ms, 2),
                        }
                    )
                )


if __name__ == "__main__":
    main()
