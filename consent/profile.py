"""The application profile: every name, path and environment variable in one place.

Paths are computed when asked, never cached at import, so tests (and hosts) can
seam them through ``HOME`` and the ``SKYPLANE_USAGE_STATS_*`` variables.

This module is on the decision path, which must cost next to nothing: it avoids
``dataclasses``, ``typing`` and ``pathlib`` at import. The ``*_file`` methods give
plain strings for that path; the ``*_path`` methods wrap the same strings in
:class:`pathlib.Path` for everyone else.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["DEFAULT_PROFILE", "AppProfile"]

_POLICY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "policies")


def _path(value: str | os.PathLike[str]) -> Path:
    from pathlib import Path

    return Path(value)


class AppProfile:
    """Names and locations for one host tool. Skyplane is the default profile."""

    __slots__ = (
        "_policy_file",
        "_shared_temp_root",
        "cli_name",
        "config_env",
        "display_name",
        "env_prefix",
        "home_dir_name",
        "host_package",
        "host_version",
        "name",
    )

    def __init__(
        self,
        *,
        name: str = "skyplane",
        display_name: str = "Skyplane",
        env_prefix: str = "SKYPLANE_USAGE_STATS",
        home_dir_name: str = ".skyplane",
        shared_temp_root: str | os.PathLike[str] = "/tmp",
        policy_file: str | os.PathLike[str] | None = None,
        cli_name: str = "consent",
        host_package: str = "skyplane",
        config_env: str | None = "SKYPLANE_CONFIG",
        host_version: str | None = None,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.env_prefix = env_prefix
        self.home_dir_name = home_dir_name
        self._shared_temp_root = os.fspath(shared_temp_root)
        self._policy_file = os.fspath(policy_file or os.path.join(_POLICY_DIR, f"{name}.toml"))
        self.cli_name = cli_name
        self.host_package = host_package
        self.config_env = config_env
        self.host_version = host_version

    def __repr__(self) -> str:
        return (
            f"AppProfile(name={self.name!r}, cli_name={self.cli_name!r}, "
            f"env_prefix={self.env_prefix!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AppProfile):
            return NotImplemented
        return all(getattr(self, slot) == getattr(other, slot) for slot in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, slot) for slot in self.__slots__))

    @property
    def shared_temp_root(self) -> Path:
        """The shared temporary directory (``/tmp``) the default spool lives under."""
        return _path(self._shared_temp_root)

    @property
    def policy_file(self) -> Path:
        """The policy this tool ships."""
        return _path(self._policy_file)

    # -- environment variable names ---------------------------------------------------
    @property
    def enabled_env(self) -> str:
        return f"{self.env_prefix}_ENABLED"

    @property
    def spool_dir_env(self) -> str:
        return f"{self.env_prefix}_DIR"

    @property
    def policy_env(self) -> str:
        return f"{self.env_prefix}_POLICY"

    @property
    def endpoint_env(self) -> str:
        return f"{self.env_prefix}_ENDPOINT"

    # -- paths as strings (the decision path) -------------------------------------------
    def home_dir(self, environ: Mapping[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        return env.get("HOME") or os.path.expanduser("~")

    def config_dir_name(self, environ: Mapping[str, str] | None = None) -> str:
        return os.path.join(self.home_dir(environ), self.home_dir_name)

    def config_file(self, environ: Mapping[str, str] | None = None) -> str:
        return os.path.join(self.config_dir_name(environ), "config.json")

    def legacy_ini_file(self, environ: Mapping[str, str] | None = None) -> str:
        """The host's own INI settings file (Skyplane's ``~/.skyplane/config``).

        The host's override variable (``SKYPLANE_CONFIG``) moves it, as it does for
        the host itself; a leading ``~`` means this profile's home.
        """
        env = os.environ if environ is None else environ
        override = env.get(self.config_env) if self.config_env else None
        if override:
            if override == "~" or override.startswith("~/"):
                return self.home_dir(environ) + override[1:]
            return override
        return os.path.join(self.config_dir_name(environ), "config")

    # -- paths ----------------------------------------------------------------------------
    def home(self, environ: Mapping[str, str] | None = None) -> Path:
        return _path(self.home_dir(environ))

    def config_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        return _path(self.config_dir_name(environ))

    def config_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return _path(self.config_file(environ))

    def record_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return self.config_dir(environ) / "consent.toml"

    def legacy_ini_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return _path(self.legacy_ini_file(environ))

    def spool_root(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        override = env.get(self.spool_dir_env)
        if override:
            return _path(override)
        return self.shared_temp_root / self.name / "usage"

    def fallback_spool_root(self) -> Path:
        return self.shared_temp_root / f"{self.name}-{os.getuid()}" / "usage"

    def policy_path(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        override = env.get(self.policy_env)
        return _path(override) if override else self.policy_file


DEFAULT_PROFILE = AppProfile()
