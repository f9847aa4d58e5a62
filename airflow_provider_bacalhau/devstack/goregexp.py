"""Go's ``regexp.Compile`` for the devstack node, on Google's RE2 (PyPI ``google-re2``).

A real node compiles ``Filter`` and ``Partition.Pattern`` with Go's regexp (RE2 syntax;
pkg/storage/s3/storage.go ``explodeKey``, pkg/s3/partitioning.go). Python's ``re`` would accept
lookarounds and backreferences and refuse ``\\pL``; RE2 does neither. Go's parser is stricter than
the C++ library in three places, applied here too: ``\\C`` is refused, group names are ASCII word
characters and unique, and nesting stops at 1000 levels. Errors read as Go's
(``error parsing regexp: <code>: `<expr>```). Kept apart from the provider's spec on purpose.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

# RE2's error texts -> Go's regexp/syntax ErrorCode texts
_GO_CODES = {
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid escape sequence": "invalid escape sequence",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "missing ]": "missing closing ]",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid character class range": "invalid character class range",
    "invalid character class": "invalid character class",
    "invalid named capture group": "invalid named capture",
    "trailing \\": "trailing backslash at end of expression",
}


class GoRegexpError(ValueError):
    """What Go's regexp.Compile returns, as text."""


@lru_cache(maxsize=128)
def compile_go(pattern: str) -> Any:
    """A compiled RE2 pattern; :class:`GoRegexpError` with Go's message when Go refuses it."""
    try:
        compiled = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        code, _, expr = text.partition(": ")
        go_code = _GO_CODES.get(code, code)
        raise GoRegexpError(
            f"error parsing regexp: {go_code}: `{expr}`" if expr else f"error parsing regexp: {go_code}"
        ) from None
    except UnicodeError:
        raise GoRegexpError("error parsing regexp: invalid UTF-8") from None
    problem = _stricter_in_go(pattern)
    if problem:
        raise GoRegexpError(f"error parsing regexp: {problem}")
    return compiled


def _stricter_in_go(pattern: str) -> str | None:
    seen: set[str] = set()
    depth = pos = 0
    klass = False
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\":
            follower = pattern[pos + 1 : pos + 2]
            if follower == "Q":
                close = pattern.find("\\E", pos + 2)
                pos = len(pattern) if close == -1 else close + 2
                continue
            if follower == "C" and not klass:
                return "invalid escape sequence: `\\C`"
            pos += 2
            continue
        if klass:
            klass = char != "]"
        elif char == "[":
            klass = True
            after = pos + 1 + (pattern.startswith("^", pos + 1))
            if pattern.startswith("]", after):
                pos = after  # a leading ']' is a member, not the end
        elif char == "(":
            depth += 1
            if depth > 1000:
                return "expression nests too deeply"
            for opener in ("(?P<", "(?<"):
                if pattern.startswith(opener, pos):
                    name = pattern[pos + len(opener) : pattern.find(">", pos)]
                    if not name or not all(c == "_" or (c.isascii() and c.isalnum()) for c in name):
                        return f"invalid named capture: `{pattern[pos : pos + len(opener) + len(name) + 1]}`"
                    if name in seen:
                        return f"duplicate capture group name: `{name}`"
                    seen.add(name)
                    break
        elif char == ")" and depth:
            depth -= 1
        pos += 1
    return None
