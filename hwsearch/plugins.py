"""Loading plug-ins: modules that register families, evaluation kinds, metrics, optimizers.

A plug-in is an importable module (``pkg.mod``) or a function in one (``pkg.mod:setup``,
called without arguments once imported). Plug-ins are loaded from two places:

* the ``--plugin MODULE`` options of ``hwsearch run``, ``resume``, ``serve`` and ``export``;
* the ``hwsearch.plugins`` entry point group of installed distributions, e.g. in a
  plug-in's ``pyproject.toml``::

      [project.entry-points."hwsearch.plugins"]
      mine = "my_package.hwsearch_plugin"

A spec never imports code by itself: it may only name what a loaded plug-in registered.
Every plug-in this process loaded travels with each evaluation task
(:attr:`hwsearch.workers.evaluation.EvalTask.plugins`), so pool and Ray workers load the
same ones before they evaluate.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from importlib.metadata import entry_points

from hwsearch.errors import HwsearchError

ENTRY_POINT_GROUP = "hwsearch.plugins"

_loaded: dict[str, None] = {}  # in load order
_lock = threading.Lock()
_entry_points_done = False


class PluginError(HwsearchError):
    """A plug-in that cannot be imported or whose set-up function failed."""


def load_plugin(name: str) -> None:
    """Import ``module`` or ``module:function`` (and call the function); once per process."""
    with _lock:
        if name in _loaded:
            return
        module_name, _, attr = name.partition(":")
        if not module_name or not all(p.isidentifier() for p in module_name.split(".")):
            raise PluginError(f"plug-in {name!r} is not a module name (pkg.mod or pkg.mod:func)")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"plug-in {name!r} cannot be imported: {exc}") from exc
        if attr:
            setup = getattr(module, attr, None)
            if not callable(setup):
                raise PluginError(f"plug-in {name!r}: {module_name} has no function {attr!r}")
            setup()
        _loaded[name] = None


def load_plugins(names: Iterable[str] = (), *, installed: bool = True) -> tuple[str, ...]:
    """Load the installed entry points (with ``installed``) and then ``names``; return every
    plug-in loaded in this process so far."""
    if installed:
        load_installed()
    for name in names:
        load_plugin(name)
    return loaded_plugins()


def load_installed() -> None:
    """Load the plug-ins of the ``hwsearch.plugins`` entry point group (once)."""
    global _entry_points_done
    if _entry_points_done:
        return
    for point in entry_points(group=ENTRY_POINT_GROUP):
        load_plugin(point.value.strip())
    _entry_points_done = True


def loaded_plugins() -> tuple[str, ...]:
    """The plug-ins loaded in this process, in load order (what a task carries)."""
    return tuple(_loaded)
