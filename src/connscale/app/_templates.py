"""URI templates for resources (RFC 6570, the operators a resource URI needs).

A template such as ``test://template/{id}/data`` is compiled once into a regular expression;
reading a resource matches the URI against it and percent-decodes each variable. Supported
expressions: ``{var}`` (simple: the value holds no ``/``, ``?`` or ``#``), ``{+var}``
(reserved: the value may hold ``/``, so ``file:///{+path}`` matches nested paths),
``{#var}`` (fragment) and ``{?a,b}`` / ``{&a,b}`` (form-style query, each variable optional
and in any order). Several variables in one simple expression (``{x,y}``) are split on
commas. Expansion (``expand``) is the inverse and percent-encodes as RFC 6570 says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, unquote

from connscale.errors import ConfigurationError

__all__ = ["UriTemplate"]

_EXPRESSION = re.compile(r"\{([^{}]*)\}")
_VARIABLE = re.compile(r"[A-Za-z0-9_]+\Z")
#: RFC 3986 reserved characters, kept unencoded by ``{+var}`` and ``{#var}``.
_RESERVED: Final = ":/?#[]@!$&'()*+,;="
#: Expansion is percent-encoding; a value longer than this is refused at match time (DoS).
MAX_URI_CHARS: Final = 8192


@dataclass(frozen=True, slots=True)
class _Part:
    operator: str  # "", "+", "#", "?" or "&"
    names: tuple[str, ...]
    group: str  # the regex group that captures it


class UriTemplate:
    """A compiled RFC 6570 URI template: ``match(uri)`` gives its variables, ``expand`` a URI."""

    __slots__ = ("_parts", "_pattern", "template", "variables")

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template:
            raise ConfigurationError(f"a URI template must be a non-empty str, got {template!r}")
        self.template = template
        parts: list[str | _Part] = []
        regex: list[str] = []
        names: list[str] = []
        position = 0
        query_seen = False
        for found in _EXPRESSION.finditer(template):
            literal = template[position : found.start()]
            self._check_literal(literal)
            if literal:
                parts.append(literal)
                regex.append(re.escape(literal))
            part = self._parse_expression(found.group(1), f"g{len(parts)}")
            for name in part.names:
                if name in names:
                    raise ConfigurationError(
                        f"URI template {template!r} names variable {name!r} twice"
                    )
                names.append(name)
            if part.operator in ("?", "&"):
                query_seen = True
            elif query_seen:
                raise ConfigurationError(
                    f"URI template {template!r}: a query expression ({{?...}}) must come last"
                )
            parts.append(part)
            regex.append(self._part_regex(part))
            position = found.end()
        tail = template[position:]
        self._check_literal(tail)
        if tail:
            if query_seen:
                raise ConfigurationError(
                    f"URI template {template!r}: a query expression ({{?...}}) must come last"
                )
            parts.append(tail)
            regex.append(re.escape(tail))
        self._parts: tuple[str | _Part, ...] = tuple(parts)
        self._pattern = re.compile("".join(regex), re.DOTALL)
        #: Variable names, in template order.
        self.variables: tuple[str, ...] = tuple(names)

    @property
    def is_template(self) -> bool:
        """Whether the template has any variable (else it is one fixed URI)."""
        return bool(self.variables)

    def query_variables(self) -> tuple[str, ...]:
        """Variables of ``{?...}`` and ``{&...}`` expressions: a client may leave them out."""
        return tuple(
            name
            for part in self._parts
            if isinstance(part, _Part) and part.operator in ("?", "&")
            for name in part.names
        )

    def match(self, uri: str) -> dict[str, str] | None:
        """The decoded variables if ``uri`` matches, else None (query variables may be absent)."""
        if len(uri) > MAX_URI_CHARS:
            return None
        found = self._pattern.fullmatch(uri)
        if found is None:
            return None
        values: dict[str, str] = {}
        for part in self._parts:
            if isinstance(part, str):
                continue
            if part.operator in ("?", "&"):
                query = found.group(part.group)
                if query:
                    wanted = set(part.names)
                    for key, value in parse_qsl(query, keep_blank_values=True):
                        if key in wanted and key not in values:
                            values[key] = value
                continue
            text = found.group(part.group)
            pieces = text.split(",") if len(part.names) > 1 else [text]
            if len(pieces) != len(part.names):
                return None
            for name, piece in zip(part.names, pieces, strict=True):
                values[name] = unquote(piece)
        return values

    def expand(self, values: Mapping[str, object]) -> str:
        """The URI for ``values`` (missing query variables are left out)."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            safe = _RESERVED if part.operator in ("+", "#") else ""
            if part.operator in ("?", "&"):
                pairs = [
                    f"{name}={quote(str(values[name]), safe='')}"
                    for name in part.names
                    if values.get(name) is not None
                ]
                if pairs:
                    out.append(part.operator + "&".join(pairs))
                continue
            missing = [name for name in part.names if name not in values]
            if missing:
                raise ConfigurationError(
                    f"URI template {self.template!r} needs a value for {missing[0]!r}"
                )
            prefix = "#" if part.operator == "#" else ""
            out.append(prefix + ",".join(quote(str(values[n]), safe=safe) for n in part.names))
        return "".join(out)

    def __repr__(self) -> str:
        return f"UriTemplate({self.template!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UriTemplate) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    # -- parsing -----------------------------------------------------------------------------

    def _check_literal(self, literal: str) -> None:
        if "{" in literal or "}" in literal:
            raise ConfigurationError(
                f"URI template {self.template!r} has an unbalanced brace; write {{name}}"
            )

    def _parse_expression(self, body: str, group: str) -> _Part:
        operator = body[:1] if body[:1] in ("+", "#", "?", "&") else ""
        names = tuple(name.strip() for name in body[len(operator) :].split(","))
        for name in names:
            if not _VARIABLE.match(name):
                raise ConfigurationError(
                    f"URI template {self.template!r}: {{{body}}} is not supported; use "
                    "{name}, {+name}, {#name} or {?name,...} with names of letters, digits and _"
                )
        return _Part(operator, names, group)

    def _part_regex(self, part: _Part) -> str:
        group = part.group
        if part.operator == "":
            return f"(?P<{group}>[^/?#]+)"
        if part.operator == "+":
            return f"(?P<{group}>[^?#]+)"
        if part.operator == "#":
            return f"\\#(?P<{group}>.+)"
        # A query: "?" starts it; "&" continues one started by a literal "?..." part.
        lead = re.escape(part.operator)
        return f"(?:{lead}(?P<{group}>[^#]*))?"
