"""Resolving the user's callables from the spec's folder, and shipping them to workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cloudpickle
import pytest

from hwsearch.errors import SpecError
from hwsearch.models.custom.callables import check_shippable, parse_ref, resolve

MODULE = """
import math

SCALE = 3

def build(config):
    return {"width": config["width"] * SCALE}

class Models:
    @staticmethod
    def evaluate(model, context):
        return {"accuracy": math.tanh(model["width"])}

not_callable = 42
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "my_models_cb.py").write_text(MODULE)
    pkg = tmp_path / "userpkg_cb"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("def build(config):\n    return 'pkg'\n")
    (tmp_path / "broken_cb.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "needs_cb.py").write_text("import not_a_real_package_xyz\n")
    # a module whose name starts with the missing module's: that one is missing, not it
    (tmp_path / "needs_prefix_cb.py").write_text("import needs_pre\n")
    # a module importing another single-file module of the folder, which is not on sys.path
    (tmp_path / "sibling_cb.py").write_text("import my_models_cb\n")
    return tmp_path


def test_resolves_from_the_spec_folder(folder: Path) -> None:
    ref = resolve("family.model", "my_models_cb:build", folder=folder)
    assert ref.obj({"width": 2}) == {"width": 6}
    assert ref.path == str(folder / "my_models_cb.py")
    nested = resolve("evaluation.evaluate", "my_models_cb:Models.evaluate", folder=folder)
    assert nested.obj({"width": 0}, None) == {"accuracy": 0.0}
    assert resolve("family.model", "userpkg_cb.nets:build", folder=folder).obj({}) == "pkg"
    assert "my_models_cb" not in sys.modules  # loaded privately, not under its plain name


def test_the_folder_comes_before_sys_path(folder: Path) -> None:
    (folder / "textwrap.py").write_text("def dedent(s):\n    return 'from the folder'\n")
    assert resolve("f", "textwrap:dedent", folder=folder).obj("x") == "from the folder"
    assert resolve("f", "textwrap:dedent").obj is textwrap.dedent  # without a folder: sys.path


def test_python_callables_pass_through() -> None:
    def build(config: dict) -> None:
        return None

    assert resolve("family.model", build).obj is build


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("nowhere_xyz:build", "module 'nowhere_xyz' not found in"),
        ("my_models_cb:missing", "has no attribute 'missing'"),
        ("my_models_cb:Models.nope", "has no attribute 'Models.nope'"),
        ("my_models_cb:not_callable", "is a int, not a callable"),
        ("my_models_cb", "not of the form 'module:attribute'"),
        ("broken_cb:build", "failed to import: RuntimeError: boom at import"),
        ("needs_cb:build", "imports 'not_a_real_package_xyz', which is not installed"),
        ("needs_prefix_cb:build", "imports 'needs_pre', which is not installed"),
        ("sibling_cb:build", "imports 'my_models_cb', a module of the spec's folder"),
    ],
)
def test_errors_name_the_field(folder: Path, ref: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve("evaluation.finetune", ref, folder=folder)
    assert info.value.field == "evaluation.finetune"
    assert reason in info.value.reason


def test_not_a_string_or_callable() -> None:
    with pytest.raises(SpecError, match=r"family\.model: must be a 'module:attribute' string"):
        resolve("family.model", 42)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="not of the form"):
        parse_ref("family.model", "a b:c")


def test_folder_callables_ship_by_value_to_a_fresh_process(folder: Path, tmp_path: Path) -> None:
    """A worker without the spec's folder on its path can still run the callable."""
    ref = resolve("family.model", "my_models_cb:build", folder=folder)
    assert check_shippable(ref) > 0
    payload = tmp_path / "fn.pkl"
    payload.write_bytes(cloudpickle.dumps(ref.obj))
    code = (
        "import cloudpickle, sys; fn = cloudpickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(fn({'width': 5})['width'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(payload)],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "15"
    package = resolve("family.model", "userpkg_cb.nets:build", folder=folder)
    payload.write_bytes(cloudpickle.dumps(package.obj))
    code = (
        "import cloudpickle, sys; fn = cloudpickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(fn({}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(payload)],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "pkg"


def test_unshippable_callable_names_the_field() -> None:
    lock = threading.Lock()

    def evaluate(model: object, context: object) -> dict:
        with lock:
            return {}

    with pytest.raises(SpecError) as info:
        check_shippable(resolve("evaluation.evaluate", evaluate))
    assert info.value.field == "evaluation.evaluate"
    assert "cannot be shipped" in info.value.reason and "lock" in info.value.reason
