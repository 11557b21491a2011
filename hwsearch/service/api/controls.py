"""Control characters in a request are refused with 422 naming where they are.

PostgreSQL refuses a NUL in text, and no name, filter or token has a use for control
characters; left to reach the database, they turn into 500s. Query parameters, the path
and the ``Authorization`` header are checked here, before routing; strings in a submitted
spec are checked with its limits (:func:`hwsearch.search.limits.check_limits`).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote

from starlette.types import Scope, Send

#: C0 controls and DEL (tab, newline and carriage return included: none belongs in a name).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def control_reason(text: str) -> str | None:
    """Why ``text`` is refused (its first control character), or ``None``."""
    match = CONTROL.search(text)
    if match is None:
        return None
    return f"contains the control character U+{ord(match.group()):04X} at {match.start()}"


def _problems(scope: Scope) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    reason = control_reason(unquote(scope.get("path", "")))
    if reason:
        problems.append({"field": "path", "reason": reason})
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        reason = control_reason(name) or control_reason(value)
        if reason:
            shown = name if control_reason(name) is None else repr(name)
            problems.append({"field": f"query.{shown}", "reason": reason})
    for header, value in scope.get("headers", ()):
        if header.lower() == b"authorization":
            reason = control_reason(value.decode("latin-1"))
            if reason:
                problems.append({"field": "header.authorization", "reason": reason})
    return problems


async def refuse_control_characters(scope: Scope, send: Send) -> bool:
    """Answer 422 (and return ``True``) when the request has control characters."""
    problems = _problems(scope)
    if not problems:
        return False
    lines = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
    body = json.dumps({"detail": f"invalid request: {lines}", "errors": problems}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return True
