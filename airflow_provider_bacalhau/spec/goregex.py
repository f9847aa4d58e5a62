"""Go ``regexp`` syntax checks for the regular expressions a compute node compiles.

``Filter`` and ``Partition.Pattern`` of an S3 input go through Go's ``regexp.Compile`` on the node
(pkg/storage/s3/storage.go ``explodeKey``, pkg/s3/partitioning.go ``PartitionConfig.Validate``),
which is RE2 syntax: no lookaround, no backreferences, ``\\pL`` and ``(?P<name>...)`` allowed.
Python's ``re`` accepts things Go refuses (lookarounds, ``\\1``) and refuses things Go accepts
(``\\pL``), so the check uses Google's RE2 (PyPI ``google-re2``) plus the few rules where Go's
parser (regexp/syntax, Go 1.26 for v1.9.3) is stricter than the C++ RE2 library:

- ``\\C`` (any single byte): RE2 accepts it, Go answers "invalid escape sequence".
- capture-group names: Go allows only ASCII letters, digits and ``_`` and refuses a name used
  twice; google-re2 accepts Unicode names and (in this build) duplicate names.
- nesting deeper than 1000 levels: Go answers "expression nests too deeply"; RE2 has no such limit.

Both refuse a counted repetition above 1000, also when nested repetitions multiply past 1000
(Go's ``repeatIsValid``). Unicode tables may differ by a Unicode version between Go and the RE2
build, so a script added in the newest Unicode release could be known to one and not the other.
"""

from __future__ import annotations

from functools import lru_cache

_MAX_DEPTH = 1000


def go_regex_error(pattern: str) -> str | None:
    """Why Go's ``regexp.Compile`` refuses ``pattern``, or None when it compiles."""
    return _error(pattern)


@lru_cache(maxsize=256)
def _error(pattern: str) -> str | None:
    import re2  # only when a job has a regex: keeps importing the spec light for DAG parsing

    options = re2.Options()
    options.log_errors = False  # RE2 logs every failed compile to stderr otherwise
    try:
        re2.compile(pattern, options=options)
    except re2.error as exc:
        message = exc.args[0] if exc.args else exc
        return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    except UnicodeError:
        return "invalid UTF-8 in the expression"
    return _go_only_error(pattern)


def _go_only_error(pattern: str) -> str | None:
    """The rules of Go's regexp/syntax parser that RE2 does not apply (see module docstring)."""
    names: set[str] = set()
    depth = 0
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":  # literal text up to \E
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if nxt == "C" and not in_class:
                return "invalid escape sequence: \\C (Go's regexp has no any-byte escape)"
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            # a ']' right after '[' or '[^' is a literal member of the class
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[j : j + 1] == "]":
                i = j
        elif ch == "(":
            depth += 1
            if depth > _MAX_DEPTH:
                return "expression nests too deeply"
            name = _group_name(pattern, i)
            if name is not None:
                if not name or not all(c == "_" or (c.isascii() and c.isalnum()) for c in name):
                    return f"invalid named capture: {name!r}"
                if name in names:
                    return f"duplicate capture group name: {name!r}"
                names.add(name)
        elif ch == ")":
            depth = max(depth - 1, 0)
        i += 1
    return None


def _group_name(pattern: str, start: int) -> str | None:
    for opener in ("(?P<", "(?<"):
        if pattern.startswith(opener, start):
            end = pattern.find(">", start + len(opener))
            return pattern[start + len(opener) : end] if end >= 0 else ""
    return None
