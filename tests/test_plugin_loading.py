"""Loading plug-ins: a bad name or module is a clear error naming it (hwsearch.plugins)."""

import pytest

from hwsearch.plugins import PluginError, load_plugin, loaded_plugins


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("no_such_module_for_hwsearch", "cannot be imported"),
        ("not a module", "is not a module name"),
        ("json:no_such_setup", "json has no function 'no_such_setup'"),
    ],
)
def test_a_plugin_that_cannot_load_is_named(name: str, reason: str) -> None:
    with pytest.raises(PluginError, match=reason) as info:
        load_plugin(name)
    assert repr(name) in str(info.value)
    assert name not in loaded_plugins()
