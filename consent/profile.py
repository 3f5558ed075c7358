"""The application profile, and the scope that resolves it in one environment.

An :class:`AppProfile` names one host tool: its command, directories and
environment variables. A :class:`Scope` is that profile in one environment (the
process's, or a mapping a caller passes): it reads the environment once and
holds the paths it leads to. The public API and the CLI build a Scope at the
edge, per call or per command run; everything below takes it, so no module
reads ``os.environ`` or resolves a path on its own.

This module is on the decision path, which must cost next to nothing: it avoids
``dataclasses``, ``typing`` and ``pathlib`` at import. The ``*_file`` and
``*_dir`` attributes are plain strings for that path; the ``*_path`` properties
wrap the same strings in :class:`pathlib.Path` for everyone else.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["DEFAULT_PROFILE", "AppProfile", "Scope"]

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


DEFAULT_PROFILE = AppProfile()


class Scope:
    """One host's profile in one environment, and the paths they resolve to.

    ``environ`` is the mapping every rule reads (``os.environ`` when not given),
    kept as given: a switch changed during a long transfer is still seen. The paths
    are resolved once, when the Scope is built; the spool directories, which need
    the working directory and the uid, on first use.
    """

    __slots__ = (
        "_spool_dirs",
        "config_dir",
        "config_file",
        "endpoint_override",
        "environ",
        "home_dir",
        "legacy_ini_file",
        "policy_file",
        "profile",
        "record_file",
        "spool_override",
    )

    def __init__(
        self, profile: AppProfile = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self.profile = profile
        self.environ: Mapping[str, str] = env
        self.home_dir: str = env.get("HOME") or os.path.expanduser("~")
        self.config_dir = os.path.join(self.home_dir, profile.home_dir_name)
        self.config_file = os.path.join(self.config_dir, "config.json")
        self.record_file = os.path.join(self.config_dir, "consent.toml")
        self.legacy_ini_file = self._legacy_ini_file()
        self.policy_file: str = env.get(profile.policy_env) or profile._policy_file
        self.spool_override: str | None = env.get(profile.spool_dir_env) or None
        """The spool directory the user chose: an explicit choice never falls back."""
        self.endpoint_override: str | None = env.get(profile.endpoint_env) or None

    def _legacy_ini_file(self) -> str:
        # The host's override variable (SKYPLANE_CONFIG) moves it, as it does for the
        # host itself; a leading "~" means this scope's home.
        name = self.profile.config_env
        override = self.environ.get(name) if name else None
        if override:
            if override == "~" or override.startswith("~/"):
                return self.home_dir + override[1:]
            return override
        return os.path.join(self.config_dir, "config")

    def __repr__(self) -> str:
        # not the environment: it may hold secrets
        return f"Scope(profile={self.profile!r}, home_dir={self.home_dir!r})"

    def without(self, *names: str) -> Scope:
        """This scope with the environment variables ``names`` unset: what-if hints."""
        rest = {key: value for key, value in self.environ.items() if key not in names}
        return Scope(self.profile, rest)

    # -- the spool directories (absolute, as they are created and vetted) -----------------
    def _spool_paths(self) -> tuple[str, str, str]:
        try:
            return self._spool_dirs
        except AttributeError:  # the first use: not resolved yet
            pass
        profile = self.profile
        shared = profile._shared_temp_root
        fallback = os.path.join(shared, f"{profile.name}-{os.getuid()}", "usage")
        self._spool_dirs: tuple[str, str, str] = (
            os.path.abspath(self._configured_spool_root()),
            os.path.abspath(shared),
            os.path.abspath(fallback),
        )
        return self._spool_dirs

    def _configured_spool_root(self) -> str:
        profile = self.profile
        default = os.path.join(profile._shared_temp_root, profile.name, "usage")
        return self.spool_override or default

    @property
    def spool_dir(self) -> str:
        """The spool root to use: the spool-directory variable's, or the shared default."""
        return self._spool_paths()[0]

    @property
    def shared_temp_dir(self) -> str:
        """The shared temporary directory (``/tmp``) the default spool lives under."""
        return self._spool_paths()[1]

    @property
    def fallback_spool_dir(self) -> str:
        """The per-user fallback spool root (``/tmp/skyplane-UID/usage``)."""
        return self._spool_paths()[2]

    # -- the same places as pathlib.Path, off the decision path ----------------------------
    @property
    def home(self) -> Path:
        return _path(self.home_dir)

    @property
    def config_path(self) -> Path:
        return _path(self.config_file)

    @property
    def record_path(self) -> Path:
        return _path(self.record_file)

    @property
    def legacy_ini_path(self) -> Path:
        return _path(self.legacy_ini_file)

    @property
    def policy_path(self) -> Path:
        return _path(self.policy_file)

    @property
    def spool_root(self) -> Path:
        """The spool root as configured, for display (``spool_dir`` is it made absolute)."""
        return _path(self._configured_spool_root())

    @property
    def fallback_spool_root(self) -> Path:
        return _path(self.fallback_spool_dir)
