"""Whether collection is on, and why. Standard library only; never raises.

The first rule that applies decides (DESIGN §3.2): the environment switch,
``DO_NOT_TRACK``, ``config.json``, Skyplane 0.3's INI flag, then the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from consent._exceptions import ConsentError
from consent.config import invalid_value_message, load_config, parse_switch
from consent.profile import DEFAULT_PROFILE, AppProfile

__all__ = ["Decision", "Source", "decide", "is_enabled"]

Source = Literal["env", "do_not_track", "config", "legacy_config", "invalid_config", "default"]


@dataclass(frozen=True)
class Decision:
    enabled: bool
    source: Source
    review_before_upload: bool = False
    warnings: tuple[str, ...] = ()


def decide(
    profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> Decision:
    """Resolve the decision. Bad input fails closed, with a warning that says how to fix it."""
    env = os.environ if environ is None else environ
    config, config_warning = _read_config(profile, env)
    review, review_warning = _review_mode(profile, env, config)
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
    if "usage_stats" in config:
        problem = invalid_value_message(
            profile.config_path(env), "usage_stats", config["usage_stats"]
        )
        if problem:
            return Decision(False, "invalid_config", review, (problem, *warnings))
        return Decision(bool(config["usage_stats"]), "config", review, warnings)

    legacy, legacy_warning = _legacy_flag(profile, env)
    if legacy_warning:
        return Decision(False, "invalid_config", review, (legacy_warning, *warnings))
    if legacy is not None:
        return Decision(legacy, "legacy_config", review, warnings)
    return Decision(True, "default", review, warnings)


def is_enabled(
    profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> bool:
    """Fast check for hosts: ``True`` only when collection is on. Never raises."""
    try:
        return decide(profile, environ).enabled
    except Exception:  # the host must never fail because of telemetry
        return False


def _read_config(
    profile: AppProfile, env: Mapping[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    path = profile.config_path(env)
    try:
        return load_config(path), None
    except ConsentError as exc:
        return None, f"{exc} Usage statistics are off until it is fixed."


def _review_mode(
    profile: AppProfile, env: Mapping[str, str], config: dict[str, Any] | None
) -> tuple[bool, str | None]:
    if not config or "usage_stats_review" not in config:
        return False, None
    value = config["usage_stats_review"]
    problem = invalid_value_message(profile.config_path(env), "usage_stats_review", value)
    if problem:
        # holding payloads is the safe reading of a value we cannot understand
        return True, problem
    return bool(value), None


def _legacy_flag(profile: AppProfile, env: Mapping[str, str]) -> tuple[bool | None, str | None]:
    path = profile.legacy_ini_path(env)
    if not path.is_file():
        return None, None
    import configparser  # only Skyplane 0.3 users pay for it

    try:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
        raw = parser.get("flags", "usage_stats", fallback=None)
    except (OSError, configparser.Error, UnicodeError):
        return None, (
            f"{path} (Skyplane 0.3 settings) cannot be read, so usage statistics are off; "
            "set them with `consent config set usage_stats true|false`."
        )
    if raw is None:
        return None, None
    switch = parse_switch(raw)
    if switch is None:
        return None, (
            f"{path}: [flags] usage_stats = {raw[:20]!r} is not true or false, so usage "
            "statistics are off; set them with `consent config set usage_stats true|false`."
        )
    return switch, None
