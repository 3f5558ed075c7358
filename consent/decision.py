"""Whether collection is on, and why. Standard library only; never raises.

The first rule that applies decides (docs/architecture.md §3.2): the environment
switch, ``DO_NOT_TRACK``, the stored settings, then the default. The setting is
stored in every file the host keeps it in (``config.json``, and Skyplane's INI
``[flags] usage_stats`` at ``$SKYPLANE_CONFIG`` or ``~/.skyplane/config``); when
they disagree, the opt-out wins.

Hosts call this on every run, so it imports almost nothing: no ``typing``,
``dataclasses`` or ``pathlib``, ``json`` only when a config file exists, and
``configparser`` only for an INI file of unusual layout.
"""

from __future__ import annotations

import os

from consent._exceptions import ConsentError
from consent.config import invalid_value_message, load_config, parse_switch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from consent.profile import Scope

    Source = Literal["env", "do_not_track", "config", "legacy_config", "invalid_config", "default"]

__all__ = ["SOURCES", "Decision", "decide_in"]

SOURCES = ("env", "do_not_track", "config", "legacy_config", "invalid_config", "default")


class Decision:
    """Whether usage statistics are collected, which rule decided, and what looked wrong."""

    __slots__ = ("enabled", "review_before_upload", "source", "warnings")

    def __init__(
        self,
        enabled: bool,
        source: Source,
        review_before_upload: bool = False,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.enabled = enabled
        self.source: Source = source
        self.review_before_upload = review_before_upload
        self.warnings = warnings

    def _key(self) -> tuple[bool, str, bool, tuple[str, ...]]:
        return (self.enabled, self.source, self.review_before_upload, self.warnings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Decision(enabled={self.enabled}, source={self.source!r}, "
            f"review_before_upload={self.review_before_upload}, warnings={self.warnings!r})"
        )


def decide_in(scope: Scope) -> Decision:
    """Resolve the decision. Bad input fails closed, with a warning that says how to fix it.

    The public :func:`consent.decide` builds the scope from a profile and an environment.
    """
    profile, env = scope.profile, scope.environ
    config, config_warning = _read_config(scope)
    review, review_warning = _review_mode(scope, config)
    warnings = tuple(w for w in (config_warning, review_warning) if w)

    raw = env.get(profile.enabled_env)
    if raw is not None:
        switch = parse_switch(raw)
        if switch is None:
            shown = raw if len(raw) <= 20 else raw[:17] + "..."
            warning = (
                f"{profile.enabled_env}={shown!r} is not one of 1/true/yes/on or "
                "0/false/no/off, so usage statistics are off."
            )
            return Decision(False, "env", review, (warning, *warnings))
        return Decision(switch, "env", review, warnings)

    if env.get("DO_NOT_TRACK", "") not in ("", "0"):
        return Decision(False, "do_not_track", review, warnings)

    if config is None:
        return Decision(False, "invalid_config", review, warnings)
    stored: bool | None = None
    if "usage_stats" in config:
        value = config["usage_stats"]
        problem = invalid_value_message(scope.config_file, "usage_stats", value, profile.cli_name)
        if problem:
            return Decision(False, "invalid_config", review, (problem, *warnings))
        stored = bool(value)

    legacy, legacy_warning = _legacy_flag(scope)
    if legacy_warning:
        return Decision(False, "invalid_config", review, (legacy_warning, *warnings))
    if stored is not None and legacy is not None and stored != legacy:
        # Two stores, two answers (edited by hand, or written by an older host): the
        # opt-out wins, and the warning names the file that says no.
        source: Source = "config" if stored is False else "legacy_config"
        return Decision(False, source, review, (_disagreement(scope, source), *warnings))
    if stored is not None:
        return Decision(stored, "config", review, warnings)
    if legacy is not None:
        return Decision(legacy, "legacy_config", review, warnings)
    return Decision(True, "default", review, warnings)


def _disagreement(scope: Scope, off: Source) -> str:
    json_file, ini_file = scope.config_file, scope.legacy_ini_file
    no, yes = (json_file, ini_file) if off == "config" else (ini_file, json_file)
    cli = scope.profile.cli_name
    return (
        f"{no} turns usage statistics off while {yes} turns them on; the opt-out wins. "
        f"Make them agree with `{cli} stats on` or `{cli} stats off`."
    )


def _read_config(scope: Scope) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return load_config(scope.config_file), None
    except ConsentError as exc:
        return None, f"{exc} Usage statistics are off until it is fixed."


def _review_mode(scope: Scope, config: dict[str, Any] | None) -> tuple[bool, str | None]:
    if not config or "usage_stats_review" not in config:
        return False, None
    value = config["usage_stats_review"]
    problem = invalid_value_message(
        scope.config_file, "usage_stats_review", value, scope.profile.cli_name
    )
    if problem:
        # holding payloads is the safe reading of a value we cannot understand
        return True, problem
    return bool(value), None


def _legacy_flag(scope: Scope) -> tuple[bool | None, str | None]:
    path, profile = scope.legacy_ini_file, scope.profile
    if not os.path.isfile(path):
        return None, None
    unreadable = (
        f"{path} ({profile.display_name} settings) cannot be read, so usage statistics "
        f"are off until it is fixed by hand or removed."
    )
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except (OSError, UnicodeError):
        return None, unreadable
    found, raw = _scan_ini_flag(text)
    if not found:
        # anything but the plain layout hosts write: configparser is the reference.
        # Importing it (and `re`) costs more than the rest of the decision.
        import configparser

        try:
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text)
            raw = parser.get("flags", "usage_stats", fallback=None)
        except configparser.Error:
            return None, unreadable
    if raw is None:
        return None, None
    switch = parse_switch(raw)
    if switch is None:
        return None, (
            f"{path}: [flags] usage_stats = {raw[:20]!r} is not true or false, so usage "
            f"statistics are off; set them with `{profile.cli_name} stats on` or "
            f"`{profile.cli_name} stats off`."
        )
    return switch, None


def _scan_ini_flag(text: str) -> tuple[bool, str | None]:
    """``[flags] usage_stats`` read as configparser would, for the plain layout only.

    Returns ``(True, value or None)`` for a file of section headers, comments and
    one-line ``key = value`` entries, with no section or key given twice and no
    ``DEFAULT`` section; ``(False, None)`` for anything else (continuation lines,
    odd headers, text before the first section), which configparser then reads.
    """
    sections: set[str] = set()
    keys: set[str] = set()
    section: str | None = None
    value: str | None = None
    for line in text.split("\n"):  # configparser splits on newlines alone
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0].isspace():
            return False, None  # a continuation line
        if stripped[0] == "[":
            section = stripped[1:-1]
            if stripped[-1] != "]" or "]" in section or section in sections:
                return False, None
            if section == "DEFAULT" or not section:
                return False, None
            sections.add(section)
            keys = set()
            continue
        equals, colon = stripped.find("="), stripped.find(":")
        cut = min(i for i in (equals, colon, len(stripped)) if i >= 0)
        if section is None or cut == len(stripped):
            return False, None
        key = stripped[:cut].strip().lower()
        if not key or key in keys:
            return False, None
        keys.add(key)
        if section == "flags" and key == "usage_stats":
            value = stripped[cut + 1 :].strip()
    return True, value
