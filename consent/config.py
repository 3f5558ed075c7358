"""The host's JSON config file (``~/.skyplane/config.json``).

The file is shared with the host tool, so every write preserves keys this package
does not own, and a file that cannot be parsed is never overwritten. Standard
library only: the decision path reads this file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent._exceptions import CorruptFileError, InvalidValueError, StorageError, UnknownKeyError
from consent._fileio import atomic_write, file_lock, make_private_dir, read_bytes_nofollow

__all__ = [
    "CONFIG_KEYS",
    "FALSE_WORDS",
    "TRUE_WORDS",
    "ConfigKey",
    "config_key",
    "invalid_value_message",
    "load_config",
    "locked",
    "parse_switch",
    "update_config",
]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_switch(value: str) -> bool | None:
    """The accepted on/off words, in any case and surrounding space; ``None`` otherwise."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _parse_bool(key: str, raw: str) -> bool:
    parsed = parse_switch(raw)
    if parsed is None:
        raise InvalidValueError(
            f"{key} takes one of 1/true/yes/on or 0/false/no/off, not {_quote(raw)}."
        )
    return parsed


def _parse_endpoint(key: str, raw: str) -> str:
    from consent._urls import check_endpoint  # ipaddress stays off the decision path

    return check_endpoint(raw.strip(), source=key)


def _parse_endpoints(key: str, raw: str) -> list[str]:
    from consent._urls import check_endpoint

    urls = [part.strip() for part in raw.split(",") if part.strip()]
    return [check_endpoint(url, source=key) for url in urls]


def _valid_bool(value: object) -> bool:
    return isinstance(value, bool)


def _valid_endpoint(value: object) -> bool:
    return isinstance(value, str)


def _valid_endpoints(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


@dataclass(frozen=True)
class ConfigKey:
    """A key of config.json that this package owns."""

    name: str
    help: str
    parse: Callable[[str, str], Any]
    is_valid: Callable[[object], bool]
    type_name: str


CONFIG_KEYS: dict[str, ConfigKey] = {
    key.name: key
    for key in (
        ConfigKey(
            "usage_stats",
            "Share anonymous usage statistics (true/false).",
            _parse_bool,
            _valid_bool,
            "boolean",
        ),
        ConfigKey(
            "usage_stats_review",
            "Hold every payload until you approve it with `stats review` (true/false).",
            _parse_bool,
            _valid_bool,
            "boolean",
        ),
        ConfigKey(
            "usage_stats_endpoint",
            "Send to this https URL instead of the policy's endpoint.",
            _parse_endpoint,
            _valid_endpoint,
            "URL",
        ),
        ConfigKey(
            "usage_stats_extra_endpoints",
            "Also send to these https URLs (comma-separated).",
            _parse_endpoints,
            _valid_endpoints,
            "list of URLs",
        ),
    )
}


def config_key(name: str) -> ConfigKey:
    try:
        return CONFIG_KEYS[name]
    except KeyError:
        known = ", ".join(CONFIG_KEYS)
        raise UnknownKeyError(
            f"{_quote(name)} is not a usage-stats setting; use one of {known}."
        ) from None


def load_config(path: Path) -> dict[str, Any]:
    """The whole config object; ``{}`` when the file does not exist.

    Raises :class:`CorruptFileError` when the file is not a JSON object, and
    :class:`StorageError` when it cannot be read.
    """
    try:
        raw = read_bytes_nofollow(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise CorruptFileError(
            f"{path} is not valid JSON. Fix it by hand, or delete it to start afresh."
        ) from None
    if not isinstance(data, dict):
        raise CorruptFileError(
            f"{path} must hold a JSON object, not {type(data).__name__}. "
            "Fix it by hand, or delete it to start afresh."
        )
    return data


def invalid_value_message(path: Path, key: str, value: object) -> str | None:
    """Why a stored value is unusable, or ``None`` when it is fine or absent."""
    spec = CONFIG_KEYS[key]
    if spec.is_valid(value):
        return None
    shown = json.dumps(value)[:40]
    return (
        f"{path}: {key} must be a {spec.type_name}, not {shown}. "
        f"Fix it with `consent config set {key} ...` or `consent config unset {key}`."
    )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock that serialises read-modify-write cycles of ``path``."""
    with contextlib.ExitStack() as stack:
        try:
            make_private_dir(path.parent)
            stack.enter_context(file_lock(path.with_name(path.name + ".lock")))
        except OSError as exc:
            raise StorageError(f"Cannot write in {path.parent}: {exc.strerror or exc}.") from None
        yield


def update_config(
    path: Path, mutate: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read-modify-write ``path`` under its lock; returns ``(before, after)``.

    ``mutate`` changes the dict in place and may raise to abort: then nothing is
    written. Keys owned by the host survive, in their original order.
    """
    with locked(path):
        before = load_config(path)
        after: dict[str, Any] = json.loads(json.dumps(before))
        mutate(after)
        if after != before or not path.exists():
            data = (json.dumps(after, indent=2, ensure_ascii=False) + "\n").encode()
            try:
                atomic_write(path, data)
            except OSError as exc:
                raise StorageError(
                    f"Could not save {path}: {exc.strerror or exc}. The file is unchanged."
                ) from None
        return before, after


def _quote(value: str) -> str:
    shown = value if len(value) <= 40 else value[:37] + "..."
    return json.dumps(shown, ensure_ascii=False)
