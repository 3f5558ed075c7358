"""The application profile: every name, path and environment variable in one place.

Paths are computed when asked, never cached at import, so tests (and hosts) can
seam them through ``HOME`` and the ``SKYPLANE_USAGE_STATS_*`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_PROFILE", "AppProfile"]

_POLICY_DIR = Path(__file__).resolve().parent / "policies"


@dataclass(frozen=True)
class AppProfile:
    """Names and locations for one host tool. Skyplane is the default profile."""

    name: str = "skyplane"
    display_name: str = "Skyplane"
    env_prefix: str = "SKYPLANE_USAGE_STATS"
    home_dir_name: str = ".skyplane"
    shared_temp_root: Path = Path("/tmp")
    policy_file: Path = _POLICY_DIR / "skyplane.toml"
    cli_name: str = "consent"
    host_package: str = "skyplane"

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

    # -- paths --------------------------------------------------------------------------
    def home(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        home = env.get("HOME")
        return Path(home) if home else Path(os.path.expanduser("~"))

    def config_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        return self.home(environ) / self.home_dir_name

    def config_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return self.config_dir(environ) / "config.json"

    def record_path(self, environ: Mapping[str, str] | None = None) -> Path:
        return self.config_dir(environ) / "consent.toml"

    def legacy_ini_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """Skyplane 0.3.x kept its flags in an INI file without an extension."""
        return self.config_dir(environ) / "config"

    def spool_root(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        override = env.get(self.spool_dir_env)
        if override:
            return Path(override)
        return self.shared_temp_root / self.name / "usage"

    def fallback_spool_root(self) -> Path:
        return self.shared_temp_root / f"{self.name}-{os.getuid()}" / "usage"

    def policy_path(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        override = env.get(self.policy_env)
        return Path(override) if override else self.policy_file


DEFAULT_PROFILE = AppProfile()
