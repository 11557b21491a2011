"""docs/plugins.md shows the demo plug-in and its job verbatim: the code the page teaches is
the code the suite runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```\w+\n(?P<code>.*?)```", re.DOTALL)


def test_the_plugin_page_includes_the_tested_files_verbatim() -> None:
    page = (ROOT / "docs" / "plugins.md").read_text()
    blocks = {m["path"]: m["code"] for m in BLOCK.finditer(page)}
    assert set(blocks) == {
        "tests/plugins/hwsearch_demo_plugin/__init__.py",
        "tests/plugins/demo.yaml",
    }
    for path, code in blocks.items():
        assert code == (ROOT / path).read_text(), f"docs/plugins.md differs from {path}"
