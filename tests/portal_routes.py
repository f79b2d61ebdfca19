"""Every route of the portal as a request to make, for the tests that walk them all (unit tests
with Flask's client, integration tests against a served portal)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask
from werkzeug.routing import Rule

PUBLIC_RULES = frozenset({"/login", "/health", "/static/<path:filename>"})
"""What answers without a login; everything else must not."""


@dataclass(frozen=True)
class RouteCall:
    method: str
    path: str
    rule: str

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/")


def protected_calls(app: Flask) -> Iterator[RouteCall]:
    """One call per method of every rule but the public ones, with example path values."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.rule in PUBLIC_RULES:
            continue
        path = example_path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield RouteCall(method=method, path=path, rule=rule.rule)


def example_path(rule: Rule) -> str:
    values: dict[str, str] = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        choices = getattr(converter, "items", None)
        if choices:
            values[name] = sorted(choices)[0]
        elif type(converter).__name__ in ("IntegerConverter", "NumberConverter", "FloatConverter"):
            values[name] = "1"
        else:
            values[name] = "x"
    return rule.build(values, append_unknown=False)[1] if values else rule.rule
