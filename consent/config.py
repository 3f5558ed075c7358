"""The host's JSON config file (``~/.skyplane/config.json``).

The file is shared with the host tool, so every write preserves keys this package
does not own, and a file that cannot be parsed is never overwritten. Standard
library only: the decision path reads this file.
"""

from __future__ import annotations

import os

from consent._exceptions import CorruptFileError, InvalidValueError, StorageError, UnknownKeyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from consent._fileio import StrPath

__all__ = [
    "CONFIG_KEYS",
    "FALSE_WORDS",
    "TRUE_WORDS",
    "ConfigKey",
    "config_key",
    "invalid_value_message",
    "load_config",
    "locked",
    "parse_json",
    "parse_switch",
    "update_config",
]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_switch(value: str) -> bool | None:
    """The accepted on/off words, in any case and surrounding space; ``None`` otherwise."""
    # only ordinary white space: str.strip() would also drop control characters
    word = value.strip(" \t\r\n").lower()
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


class ConfigKey:
    """A key of config.json that this package owns."""

    __slots__ = ("help", "is_valid", "name", "parse", "type_name")

    def __init__(
        self,
        name: str,
        help: str,
        parse: Callable[[str, str], Any],
        is_valid: Callable[[object], bool],
        type_name: str,
    ) -> None:
        self.name = name
        self.help = help
        self.parse = parse
        self.is_valid = is_valid
        self.type_name = type_name


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


def load_config(path: StrPath) -> dict[str, Any]:
    """The whole config object; ``{}`` when the file does not exist.

    Raises :class:`CorruptFileError` when the file is not a JSON object, and
    :class:`StorageError` when it cannot be read. A symlinked config file (as
    dotfile managers make) is followed: it lives in the user's own home.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        data = parse_json(raw)
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


class _ScannerContext:
    """The settings ``json.JSONDecoder`` hands its C scanner, for a plain ``json.loads``."""

    def __init__(self) -> None:
        constants = {"-Infinity": -float("inf"), "Infinity": float("inf"), "NaN": float("nan")}
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = constants.__getitem__


def parse_json(raw: bytes) -> object:
    """``json.loads(raw)`` for a UTF-8 document, without importing ``json``.

    Importing ``json`` pulls in ``re``, ``enum`` and more, which would double the
    cost of ``consent.is_enabled()`` for every host run (bench/decision.py). The
    C scanner behind ``json.loads`` is the same one used here; anything unusual
    (a BOM, another encoding, no C accelerator) goes to ``json.loads`` itself, and
    a property test checks the two agree.
    """
    try:
        import _json

        text = raw.decode("utf-8")
        # typeshed types the argument as a scanner; the C code reads these attributes
        scanner = _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
    except (ImportError, AttributeError, TypeError, UnicodeDecodeError):
        return _parse_with_json(raw)
    if text.startswith("\ufeff") or "\x00" in text[:4]:
        return _parse_with_json(raw)  # json.loads reads these as UTF-16 or UTF-32
    start = _skip_whitespace(text, 0)
    try:
        value, end = scanner(text, start)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if _skip_whitespace(text, end) != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def _skip_whitespace(text: str, index: int) -> int:
    length = len(text)
    while index < length and text[index] in " \t\n\r":
        index += 1
    return index


def _parse_with_json(raw: bytes) -> object:
    import json

    return json.loads(raw)


def invalid_value_message(path: StrPath, key: str, value: object) -> str | None:
    """Why a stored value is unusable, or ``None`` when it is fine or absent."""
    spec = CONFIG_KEYS[key]
    if spec.is_valid(value):
        return None
    import json

    shown = json.dumps(value)[:40]
    return (
        f"{path}: {key} must be a {spec.type_name}, not {shown}. "
        f"Fix it with `consent config set {key} ...` or `consent config unset {key}`."
    )


class locked:
    """Hold the lock that serialises read-modify-write cycles of a file in the home.

    Writes go to the symlink's target, so a dotfile manager's link survives; the
    lock lives beside the target as ``<name>.lock``.
    """

    def __init__(self, path: StrPath) -> None:
        self.target = os.path.realpath(path)
        self._lock: Any = None

    def __enter__(self) -> str:
        from consent._fileio import file_lock, make_private_dir

        try:
            make_private_dir(os.path.dirname(self.target))
            self._lock = file_lock(self.target + ".lock")
            self._lock.__enter__()
        except OSError as exc:
            raise StorageError(
                f"Cannot write in {os.path.dirname(self.target)}: {exc.strerror or exc}."
            ) from None
        return self.target

    def __exit__(self, *exc_info: object) -> None:
        self._lock.__exit__(None, None, None)


def _encode(config: dict[str, Any]) -> bytes:
    import json

    try:
        return (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:
        # a host's value holds a lone surrogate (valid JSON as an escape, not UTF-8):
        # keep it escaped rather than refuse the user's own change
        return (json.dumps(config, indent=2) + "\n").encode()


def write_atomically(target: str, data: bytes) -> None:
    """Replace ``target`` atomically (mode 0600) or raise :class:`StorageError`."""
    from consent._fileio import atomic_write

    try:
        atomic_write(target, data)
    except OSError as exc:
        raise StorageError(
            f"Could not save {target}: {exc.strerror or exc}. The file is unchanged."
        ) from None


def update_config(
    path: StrPath, mutate: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read-modify-write ``path`` under its lock; returns ``(before, after)``.

    ``mutate`` changes the dict in place and may raise to abort: then nothing is
    written. Keys owned by the host survive, in their original order.
    """
    import json

    with locked(path) as target:
        before = load_config(target)
        after: dict[str, Any] = json.loads(json.dumps(before))
        mutate(after)
        if after != before or not os.path.exists(target):
            write_atomically(target, _encode(after))
        return before, after


def _quote(value: str) -> str:
    import json

    shown = value if len(value) <= 40 else value[:37] + "..."
    return json.dumps(shown, ensure_ascii=False)
