"""The data policy: which fields may be collected, and why. Standard library only.

A policy is loaded from TOML and validated strictly, because it is the only thing
that decides what may ever leave the machine: a field it does not declare can
never be sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from consent._exceptions import ConsentError, PolicyError

__all__ = [
    "CATEGORIES",
    "FIELD_TYPES",
    "FieldSpec",
    "Policy",
    "PolicyDiff",
    "diff_schemas",
    "fingerprint_of",
    "load_policy",
]

FIELD_TYPES = ("string", "integer", "number", "boolean", "string[]", "object")
CATEGORIES = ("system", "ids", "regions", "arguments", "performance", "error")
FORMATS = ("loki", "json")

Schema = Mapping[str, tuple[str, str]]
"""Field name to ``(type, category)``: what the fingerprint covers."""

_TOP_LEVEL = {
    "name": str,
    "version": int,
    "effective": dt.date,
    "summary": str,
    "docs_url": str,
    "contact": str,
    "endpoint": str,
    "format": str,
    "fields": dict,
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    category: str
    description: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    effective: dt.date
    summary: str
    docs_url: str
    contact: str
    endpoint: str
    format: Literal["loki", "json"]
    fields: Mapping[str, FieldSpec]
    path: Path

    @property
    def schema(self) -> dict[str, tuple[str, str]]:
        return {name: (spec.type, spec.category) for name, spec in self.fields.items()}

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.schema)

    def by_category(self) -> dict[str, list[FieldSpec]]:
        grouped: dict[str, list[FieldSpec]] = {category: [] for category in CATEGORIES}
        for spec in self.fields.values():
            grouped[spec.category].append(spec)
        return {category: specs for category, specs in grouped.items() if specs}


def fingerprint_of(schema: Schema) -> str:
    """sha256 over the sorted field names with their type and category."""
    lines = "".join(
        f"{name}\t{kind}\t{category}\n" for name, (kind, category) in sorted(schema.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class PolicyDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...]
    """``(name, (old type, old category), (new type, new category))``."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_schemas(old: Schema, new: Schema) -> PolicyDiff:
    return PolicyDiff(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(
            (name, tuple(old[name]), tuple(new[name]))  # type: ignore[misc]
            for name in sorted(set(old) & set(new))
            if tuple(old[name]) != tuple(new[name])
        ),
    )


def load_policy(path: Path) -> Policy:
    """Load and validate the policy at ``path``; raise :class:`PolicyError` naming the problem.

    Callers pass their scope's ``policy_path``, the policy in force.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist.") from None
    except OSError as exc:
        raise PolicyError(f"Cannot read policy file {path}: {exc.strerror or exc}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"Policy file {path} is not valid TOML: {exc}.") from None
    except ValueError:  # tomllib's own limit on huge integers
        raise PolicyError(f"Policy file {path} holds a number too large to read.") from None
    except RecursionError:
        raise PolicyError(f"Policy file {path} is nested too deeply to be a policy.") from None
    return _validate(data, path)


def _validate(data: dict[str, Any], path: Path) -> Policy:
    def fail(problem: str) -> PolicyError:
        return PolicyError(f"Policy file {path}: {problem}.")

    for key, kind in _TOP_LEVEL.items():
        if key not in data:
            raise fail(f"missing required key {key!r}")
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise fail(f"{key!r} must be a {kind.__name__}, not {type(value).__name__}")
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}")
    if data["version"] < 1:
        raise fail("'version' must be a positive integer")
    if data["format"] not in FORMATS:
        raise fail(f"'format' must be one of {', '.join(FORMATS)}, not {data['format']!r}")
    if not data["fields"]:
        raise fail("it declares no fields")

    from consent._urls import check_endpoint  # only loaded when a policy is

    try:
        check_endpoint(data["endpoint"], source="endpoint")
    except ConsentError as exc:
        raise fail(str(exc).rstrip(".")) from None

    fields: dict[str, FieldSpec] = {}
    for name, spec in data["fields"].items():
        if not name.isidentifier():
            raise fail(f"field name {name!r} must be an identifier")
        if not isinstance(spec, dict):
            raise fail(f"field {name!r} must be a table")
        for required in ("type", "category", "description"):
            if not isinstance(spec.get(required), str) or not spec[required].strip():
                raise fail(f"field {name!r} needs a non-empty string {required!r}")
        if spec["type"] not in FIELD_TYPES:
            raise fail(
                f"field {name!r} has type {spec['type']!r}; use one of {', '.join(FIELD_TYPES)}"
            )
        if spec["category"] not in CATEGORIES:
            allowed = ", ".join(CATEGORIES)
            raise fail(f"field {name!r} has category {spec['category']!r}; use one of {allowed}")
        extra = {k: v for k, v in spec.items() if k not in ("type", "category", "description")}
        fields[name] = FieldSpec(
            name, spec["type"], spec["category"], spec["description"].strip(), extra
        )

    return Policy(
        name=data["name"],
        version=data["version"],
        effective=data["effective"],
        summary=" ".join(data["summary"].split()),
        docs_url=data["docs_url"],
        contact=data["contact"],
        endpoint=data["endpoint"],
        format=data["format"],
        fields=fields,
        path=path,
    )
