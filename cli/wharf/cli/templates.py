"""The subset of Go templates that ``--format`` accepts, as the docker CLI uses it.

Supported actions: ``{{.}}``, ``{{.Field}}``, ``{{.A.B}}`` and the functions ``json``, ``upper``,
``lower``, ``title``, ``join ARG "sep"``, ``index ARG "key"``, ``println``. ``table`` at the
start makes a tab-aligned table with a header; ``\\t`` and ``\\n`` are turned into tab and newline
as Docker does. Values print like Go's ``fmt``: ``map[k:v]``, ``[a b]``, ``<no value>``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wharf.cli.formatting import tabulate

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)


class TemplateError(Exception):
    """A template that cannot be parsed or executed (the CLI prints it and exits 1)."""


@dataclass(frozen=True)
class Row:
    """A presentation object (Docker's ``imageContext``): its fields are a fixed set."""

    fields: Mapping[str, Any]
    type_name: str = "row"


def go_str(value: Any) -> str:
    """A value printed the way Go's ``fmt.Sprint`` prints decoded JSON."""
    if isinstance(value, Row):
        value = dict(value.fields)
    if value is None:
        text = "<no value>"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        text = str(int(value))
    elif isinstance(value, Mapping):
        text = "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    elif isinstance(value, list | tuple):
        text = "[" + " ".join(go_str(v) for v in value) + "]"
    else:
        text = str(value)
    return text


def to_json(value: Any) -> str:
    """Docker's ``json`` template function (no HTML escaping), except for a whole Row.

    A Row is marshalled by Go's ``json.Marshal`` inside the CLI, which escapes ``<`` and ``>``;
    that is why ``{{json .}}`` shows ``\\u003cnone\\u003e``.
    """
    if isinstance(value, Row):
        text = json.dumps(dict(value.fields), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lookup(value: Any, path: str) -> Any:
    current = value
    for name in [p for p in path.split(".") if p]:
        if isinstance(current, Row):
            if name not in current.fields:
                raise TemplateError(f"template: can't evaluate field {name} in type "
                                    f"{current.type_name}")
            current = current.fields[name]
        elif isinstance(current, Mapping):
            if name not in current:
                raise TemplateError(f'template: map has no entry for key "{name}"')
            current = current[name]
        elif current is None:
            raise TemplateError(f"template: nil pointer evaluating .{name}")
        else:
            raise TemplateError(f"template: can't evaluate field {name} in type "
                                f"{type(current).__name__}")
    return current


def _fn_index(value: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise TemplateError(f"template: error calling index: {exc}") from exc
    return value


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "upper": lambda v: go_str(v).upper(),
    "lower": lambda v: go_str(v).lower(),
    "title": lambda v: go_str(v).title(),
    "join": lambda v, sep: sep.join(go_str(x) for x in v),
    "index": _fn_index,
    "println": lambda *v: " ".join(go_str(x) for x in v) + "\n",
}


def _argument(token: str, dot: Any) -> Any:
    if token.startswith("."):
        return _lookup(dot, token)
    if token.startswith('"') or token.startswith("`"):
        return token[1:-1]
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    raise TemplateError(f'template: function "{token}" not defined')


def _evaluate(action: str, dot: Any) -> str:
    try:
        words = shlex.split(action, posix=False)
    except ValueError as exc:
        raise TemplateError(f"template: bad action {{{{{action}}}}}: {exc}") from exc
    if not words:
        raise TemplateError("template: missing value for command")
    head, args = words[0], words[1:]
    if head in _FUNCS:
        result = _FUNCS[head](*[_argument(a, dot) for a in args])
        return result if isinstance(result, str) else go_str(result)
    value = _argument(head, dot)  # an unknown bare word fails here as "not defined"
    if args:
        raise TemplateError(f"template: unsupported action {{{{{action}}}}}")
    return go_str(value)


@dataclass(frozen=True)
class Template:
    """A parsed ``--format`` value."""

    text: str
    table: bool

    def render(self, dot: Any) -> str:
        """Execute against one object (a Row or a decoded JSON document)."""
        out, pos = [], 0
        for match in _ACTION.finditer(self.text):
            out.append(self.text[pos:match.start()])
            out.append(_evaluate(match.group(1), dot))
            pos = match.end()
        out.append(self.text[pos:])
        return "".join(out)

    def fields(self) -> list[str]:
        """The ``.Field`` names the template reads, in order (for a table header)."""
        return re.findall(r"\.(\w+)", " ".join(_ACTION.findall(self.text)))


def parse(text: str) -> Template:
    """Parse a ``--format`` value (``table …``, ``json`` or a template)."""
    table = text.startswith("table")
    body = text[len("table"):] if table else text
    body = body.strip(" ")
    if text.strip() == "json":
        body, table = "{{json .}}", False
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    if body.count("{{") != body.count("}}"):
        raise TemplateError(f"template: unclosed action in {text!r}")
    return Template(body, table)


def render_rows(template: Template, rows: Iterable[Row], headers: Mapping[str, str]) -> str:
    """Every row through the template; a table gets a header and aligned columns."""
    lines = [template.render(row) for row in rows]
    if not template.table:
        return "\n".join(lines)
    header = template.render(Row({k: headers.get(k, k.upper()) for k in template.fields()}))
    cells: Sequence[Sequence[str]] = [line.split("\t") for line in [header, *lines]]
    return tabulate(cells)
