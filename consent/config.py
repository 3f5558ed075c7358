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
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
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
    "update_ini_flag",
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
    except SystemError:
        # The C scanner raises its JSONDecodeError from json.decoder only when that is
        # already imported; otherwise it fails with SystemError. json.loads says it right.
        return _parse_with_json(raw)
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


def invalid_value_message(
    path: StrPath, key: str, value: object, cli: str = "consent"
) -> str | None:
    """Why a stored value is unusable, or ``None`` when it is fine or absent."""
    spec = CONFIG_KEYS[key]
    if spec.is_valid(value):
        return None
    import json

    shown = json.dumps(value)[:40]
    return (
        f"{path}: {key} must be a {spec.type_name}, not {shown}. "
        # `config set` works for a host too (its own config command routes the key
        # here); `config unset` is the standalone CLI's alone
        f"Fix it with `{cli} config set {key} ...`, or delete {key} from that file."
    )


def locked(path: StrPath) -> AbstractContextManager[str]:
    """Hold the lock that serialises read-modify-write cycles of a file in the home.

    Yields the path to write: the symlink's target, so a dotfile manager's link
    survives; the lock lives beside the target as ``<name>.lock``.
    """
    import contextlib

    from consent._fileio import file_lock, make_private_dir

    target = os.path.realpath(path)

    @contextlib.contextmanager
    def hold() -> Iterator[str]:
        with contextlib.ExitStack() as stack:
            try:
                make_private_dir(os.path.dirname(target))
                stack.enter_context(file_lock(target + ".lock"))
            except OSError as exc:
                # only taking the lock is reported this way; errors of the body pass
                raise StorageError(
                    f"Cannot write in {os.path.dirname(target)}: {exc.strerror or exc}."
                ) from None
            yield target

    return hold()


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


def update_ini_flag(path: StrPath, value: bool | None) -> bool:
    """Set (or with ``None`` remove) ``[flags] usage_stats`` in the host's INI file.

    Only a file that exists is written: a host that keeps no INI file gets none.
    Every other line (sections, keys, comments) is kept byte for byte, and the file
    is replaced atomically under its lock. Returns whether the file exists.
    Raises :class:`CorruptFileError` for a file that cannot be parsed (it is left
    alone) and :class:`StorageError` when it cannot be written.
    """
    if not os.path.isfile(path):
        return False
    with locked(path) as target:
        try:
            with open(target, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return False
        except (OSError, UnicodeError) as exc:
            raise StorageError(f"Cannot read {path}: {exc}.") from None
        new = _with_ini_flag(text, value)
        _check_ini(path, new, value)
        if new != text:
            write_atomically(target, new.encode("utf-8"))
    return True


def _with_ini_flag(text: str, value: bool | None) -> str:
    lines = text.splitlines(keepends=True)
    section: str | None = None
    flags_at: int | None = None
    found: list[int] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            if section == "flags" and flags_at is None:
                flags_at = index
            continue
        if section != "flags" or line[:1] in (" ", "\t"):
            continue  # another section, or a continuation line
        name = line.split("=", 1)[0].split(":", 1)[0].strip().lower()
        if name == "usage_stats" and ("=" in line or ":" in line):
            found.append(index)
    # Skyplane writes Python's bool words, and reads them back
    entry = None if value is None else f"usage_stats = {value}\n"
    for index in reversed(found):
        del lines[index]
    if entry is None:
        return "".join(lines)
    if found:
        lines.insert(found[0], entry)
    elif flags_at is not None:
        lines.insert(flags_at + 1, entry)
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(("\n" if lines else "") + "[flags]\n" + entry)
    return "".join(lines)


def _check_ini(path: StrPath, text: str, value: bool | None) -> None:
    """Refuse to write an INI file that would not read back as intended."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
        raw = parser.get("flags", "usage_stats", fallback=None)
    except configparser.Error:
        raise CorruptFileError(
            f"{path} cannot be parsed as an INI file, so it was left unchanged. "
            "Fix it by hand, or delete it."
        ) from None
    if (None if raw is None else parse_switch(raw)) is not value:
        raise CorruptFileError(
            f"{path} has a [flags] usage_stats entry that cannot be changed safely, so it "
            "was left unchanged. Fix it by hand."
        )
