"""The user's callables: ``"module:attr"`` strings from a spec, or Python objects.

A spec names a callable as ``"my_models:build"`` (or ``"pkg.mod:obj.attr"``). The module is
looked up in the spec file's folder first, then on ``sys.path``. A single-file module of the
folder is loaded from its file under a private name, without touching ``sys.path``; a dotted
name inside a package of the folder is imported with the folder put first on ``sys.path``
for the duration of the import (under a lock), and the package is then shipped by value.
Every problem is a :class:`~hwsearch.errors.SpecError` naming the field (``family.model``,
``evaluation.evaluate``, ...).

Pool and Ray executors run candidates in other processes, so a callable must survive
serialisation: :func:`check_shippable` pickles it with cloudpickle (what Ray uses) and says
which field cannot be shipped and why.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from hwsearch.errors import SpecError

_REF = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)$")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CallableRef:
    """A resolved callable and where it came from (``ref`` is None for a Python object)."""

    field: str
    obj: Callable[..., Any]
    ref: str | None = None
    path: str | None = None  # the file the module was loaded from, where known


def parse_ref(field: str, ref: str) -> tuple[str, str]:
    """``(module, attribute path)`` of ``"module:attr"``; a :class:`SpecError` otherwise."""
    if not isinstance(ref, str):
        raise SpecError(field, f"must be a 'module:attribute' string, got {type(ref).__name__}")
    match = _REF.match(ref.strip())
    if match is None and ("<lambda>" in ref or "<locals>" in ref):
        raise SpecError(field, unnamed_reason(ref))
    if match is None:
        raise SpecError(
            field, f"{ref!r} is not of the form 'module:attribute' (e.g. 'my_models:build')"
        )
    return match.group(1), match.group(2)


def unnamed_reason(ref: str) -> str:
    """Why a stored ``ref`` of a lambda or a nested function cannot be resolved again."""
    kind = "a lambda" if "<lambda>" in ref else "a function defined inside another function"
    return (
        f"{ref!r} names {kind}, which a stored spec cannot name again: resuming or "
        "exporting the job needs a function defined at the top level of a module (def "
        "evaluate(model, context): ... in my_models.py)"
    )


def _from_folder(module: str, folder: Path) -> ModuleType | None:
    """Load ``module`` from ``folder`` (a file ``a/b.py`` or a package ``a/b/__init__.py``)."""
    parts = module.split(".")
    base = folder.joinpath(*parts)
    candidates = [base.with_suffix(".py"), base / "__init__.py"]
    top = folder / parts[0]
    if not (top.with_suffix(".py").is_file() or (top / "__init__.py").is_file()):
        return None
    if len(parts) > 1:
        # a dotted name inside a package of the folder: import the package from the folder
        # by putting the folder first on sys.path for the duration of the import
        with _LOCK:
            sys.path.insert(0, str(folder))
            try:
                mod = importlib.import_module(module)
            finally:
                sys.path.remove(str(folder))
            # workers do not have the folder on their path: ship the package by value
            cloudpickle.register_pickle_by_value(sys.modules[parts[0]])
            return mod
    for path in candidates:
        if path.is_file():
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            key = f"_hwsearch_user_{digest}.{module}"
            with _LOCK:
                if key in sys.modules:
                    return sys.modules[key]
                spec = importlib.util.spec_from_file_location(
                    module, path, submodule_search_locations=None
                )
                if spec is None or spec.loader is None:
                    return None
                mod = importlib.util.module_from_spec(spec)
                # cached under a private key, not its plain name: the same name elsewhere
                # on sys.path stays importable, and cloudpickle ships this module's
                # functions and classes by value (workers need not see the folder)
                sys.modules[key] = mod
                try:
                    spec.loader.exec_module(mod)
                except BaseException:
                    del sys.modules[key]
                    raise
                return mod
    return None


def _in_folder(module: str, folder: Path) -> bool:
    """Whether ``module``'s top-level name is a file or package of ``folder``."""
    top = folder / module.split(".")[0]
    return top.with_suffix(".py").is_file() or (top / "__init__.py").is_file()


def _import(field: str, module: str, folder: Path | None) -> tuple[ModuleType, str | None]:
    try:
        if folder is not None:
            mod = _from_folder(module, folder)
            if mod is not None:
                return mod, getattr(mod, "__file__", None)
        mod = importlib.import_module(module)
        return mod, getattr(mod, "__file__", None)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            where = f"in {folder} or on sys.path" if folder is not None else "on sys.path"
            raise SpecError(field, f"module {module!r} not found {where}") from None
        if exc.name is not None and folder is not None and _in_folder(exc.name, folder):
            raise SpecError(
                field,
                f"module {module!r} could not be imported: it imports {exc.name!r}, a module "
                f"of the spec's folder {folder}, which is not on sys.path (a single-file "
                "module of the folder is loaded on its own); put the folder on PYTHONPATH, "
                "or make the modules one package and name the callable 'package.module:attr'",
            ) from None
        raise SpecError(
            field,
            f"module {module!r} could not be imported: it imports {exc.name!r}, "
            "which is not installed",
        ) from None
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(
            field, f"module {module!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def resolve(
    field: str,
    value: str | Callable[..., Any],
    *,
    folder: str | Path | None = None,
) -> CallableRef:
    """The callable ``value`` names (a ``"module:attr"`` string) or is (a Python callable).

    ``folder`` is the spec file's folder, searched before ``sys.path``.
    """
    if callable(value) and not isinstance(value, str):
        return CallableRef(field=field, obj=value)
    if not isinstance(value, str):
        raise SpecError(
            field, f"must be a 'module:attribute' string or a callable, got {type(value).__name__}"
        )
    module, attr = parse_ref(field, value)
    base = None if folder is None else Path(folder)
    if base is not None and not base.is_dir():
        raise SpecError(field, f"the spec's folder {str(base)!r} does not exist")
    mod, path = _import(field, module, base)
    obj: Any = mod
    walked = []
    for part in attr.split("."):
        walked.append(part)
        if not hasattr(obj, part):
            raise SpecError(
                field,
                f"module {module!r} has no attribute {'.'.join(walked)!r}"
                + (f" (in {path})" if path else ""),
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(
            field, f"{value!r} is a {type(obj).__name__}, not a callable (function or class)"
        )
    return CallableRef(field=field, obj=obj, ref=value, path=path)


def check_shippable(ref: CallableRef) -> int:
    """Pickle ``ref.obj`` with cloudpickle, as pool and Ray executors will; returns the bytes.

    A callable that closes over a lock, an open file, a CUDA context or a generator cannot
    be shipped: the :class:`SpecError` names the field and what failed.
    """
    try:
        payload = cloudpickle.dumps(ref.obj)
        cloudpickle.loads(payload)
    except Exception as exc:
        raise SpecError(
            ref.field,
            f"cannot be shipped to pool or Ray workers (cloudpickle): {type(exc).__name__}: "
            f"{exc}; define it at module level and keep unpicklable state (open files, locks, "
            "connections) out of what it closes over",
        ) from None
    return len(payload)
