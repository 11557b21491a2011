"""The type of a table file named in a spec: an absolute, resolved path, confined to the
server's table folders where it has them.

It lives here, below the search, so that the workers' ``table`` evaluation kind
(:mod:`hwsearch.workers.builtin_kinds`) can define its settings with it, as the spec's
table targets and priors do (:mod:`hwsearch.search.spec`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints, ValidationInfo


def resolve_table_path(value: str, info: ValidationInfo) -> str:
    """``value`` as a final absolute path (:func:`hwsearch.files.resolve`: ``~``, ``..`` and
    links resolved; a relative one taken from the context's base_dir), confined to the
    context's ``file_roots`` where it has them (a server's table folders)."""
    from hwsearch.files import FileAccessError, confine, resolve

    context = info.context or {}
    try:
        path = resolve(value, context.get("base_dir"))
    except FileAccessError as exc:
        raise ValueError(exc.reason) from None
    roots = context.get("file_roots")
    try:
        return str(confine(path, roots))
    except FileAccessError:
        if not roots:
            raise ValueError(
                "this server reads no table files (start it with --tables DIR)"
            ) from None
        shown = ", ".join(str(r) for r in roots)
        raise ValueError(f"{value!r} is outside the server's table folders ({shown})") from None


TablePath = Annotated[str, StringConstraints(min_length=1), AfterValidator(resolve_table_path)]
TableColumn = Annotated[str, StringConstraints(min_length=1)]
