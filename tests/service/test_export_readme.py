"""What an export's README says about loading the model."""

from __future__ import annotations

from hwsearch.service.export import _int8_note


def test_an_int8_model_s_readme_says_what_loading_warns_and_what_to_use_instead() -> None:
    note = " ".join(_int8_note("x86-int8-static").split())
    assert "quantized tensor creation functions are deprecated" in note
    assert "warnings.catch_warnings()" in note
    assert "torchao.quantization.quantize_(model, Int8WeightOnlyConfig())" in note
    assert _int8_note("fp32") == "" and _int8_note("fp32-dense") == ""
    assert _int8_note("cpu-int4-weight-only") != ""
