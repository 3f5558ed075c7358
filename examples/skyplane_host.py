"""A small stand-in for Skyplane, showing how a Typer host embeds `consent`.

    python examples/skyplane_host.py --help
    python examples/skyplane_host.py init             # asks on a terminal, after its own setup
    python examples/skyplane_host.py init -y          # never asks; keeps the current answer
    python examples/skyplane_host.py cp a.txt b.txt   # records one session
    python examples/skyplane_host.py stats review     # the mounted commands
    python examples/skyplane_host.py config set usage_stats false   # the host's own config

What is borrowed from `consent`: the apps built for this host's profile (``stats``
and ``policy`` mounted, never replacing a host command), the consent step at the end
of the host's ``init``, the settings function its own ``config`` routes the
``usage_stats*`` keys to, and one session per transfer. The rest is the host's own.
"""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

import consent
from consent.cli import mount
from consent.profile import AppProfile, Scope

HOST_VERSION = "0.0.1-example"

# Everything consent needs to know about this host: its command (every hint names
# it), its files and its environment variables. The rest are Skyplane's defaults.
PROFILE = AppProfile(cli_name="skyplane-host", display_name="Skyplane", host_version=HOST_VERSION)

app = typer.Typer(
    name="skyplane-host",
    help="A stand-in for Skyplane that embeds consent's usage statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(name="config", help="The host's own settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class CopyError(RuntimeError):
    """The host's own error type: consent records it, scrubbed, and re-raises it as is."""


def _settings_file() -> Path:
    # the host's INI file: $SKYPLANE_CONFIG or ~/.skyplane/config
    return Scope(PROFILE).legacy_ini_path


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Set a host setting; usage_stats* keys go to consent (same checks, every file)."""
    if apps.owns(key):
        apps.settings(key, value)
        return
    path = _settings_file()
    parser = configparser.ConfigParser()
    parser.read(path)
    if not parser.has_section("flags"):
        parser.add_section("flags")
    parser.set("flags", key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        parser.write(handle)
    typer.echo(f"{key} = {value}")


@config_app.command("get")
def config_get(key: str) -> None:
    """Print a host setting; usage_stats* keys show the value in force and its source."""
    if apps.owns(key):
        apps.settings(key)
        return
    parser = configparser.ConfigParser()
    parser.read(_settings_file())
    typer.echo(parser.get("flags", key, fallback="(unset)"))


@app.command()
def init(
    non_interactive: Annotated[
        bool,
        typer.Option("--non-interactive", "-y", help="Never prompt; keep the current answers."),
    ] = False,
) -> None:
    """Set up the host: its own settings first, then the usage-statistics question."""
    typer.echo("Checking cloud credentials... none needed for this example.")
    # Ctrl-C or Esc at the question raises typer.Exit(130); Typer makes it the exit code.
    apps.init(non_interactive=non_interactive)
    typer.echo("skyplane-host is ready.")


@app.command()
def cp(
    src: Annotated[Path, typer.Argument(help="The file to copy.")],
    dst: Annotated[Path, typer.Argument(help="Where to copy it.")],
    src_region: Annotated[
        str, typer.Option("--src-region", help="Where SRC lives, as provider:region.")
    ] = "local",
    dst_region: Annotated[
        str, typer.Option("--dst-region", help="Where DST lives, as provider:region.")
    ] = "local",
    fail: Annotated[bool, typer.Option("--fail", help="Fail on purpose, after starting.")] = False,
    exit_code: Annotated[
        int, typer.Option("--exit-code", help="Report failure by return code, as Skyplane does.")
    ] = 0,
) -> None:
    """Copy a local file (standing in for a cloud transfer) and record the session."""
    # argv is scrubbed before it is written: the two paths become <path> markers.
    with consent.session(
        argv=sys.argv[1:],
        known_flags=("--src-region", "--dst-region", "--fail", "--exit-code"),
        host_version=HOST_VERSION,
        profile=PROFILE,
    ) as session:
        session.route(src=src_region, dst=dst_region)  # known mid-command; a str is one region
        if fail:
            raise CopyError(f"cannot write {dst}: permission denied")
        shutil.copyfile(src, dst)
        session.transferred(dst.stat().st_size)
        session.outcome(exit_code)
    if exit_code:
        raise typer.Exit(exit_code)
    typer.echo(f"Copied {dst.stat().st_size} bytes.")


# `stats` and `policy` join the host's commands; its own `config` is kept.
apps = mount(app, PROFILE)


def main() -> None:
    try:
        app()
    except CopyError as exc:
        # The host's own error handling sees its own exception, unchanged by consent.
        typer.echo(f"skyplane-host: copy failed: {exc}", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
