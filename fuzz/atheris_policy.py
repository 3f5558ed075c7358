"""Coverage-guided fuzzing of the policy loader with atheris (libFuzzer). Not run by pytest.

    pip install atheris
    python fuzz/atheris_policy.py -max_total_time=60 /tmp/consent-corpus/policy

For any bytes, ``load_policy`` returns a valid Policy or raises PolicyError, and
nothing else. Seed the corpus with the shipped policy (the harness adds it when
the corpus directory is empty) so the fuzzer starts from a valid document.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore  # no stubs, and not installed in CI

with atheris.instrument_imports():
    import tomllib

    from consent._exceptions import PolicyError
    from consent._urls import check_endpoint
    from consent.policy import CATEGORIES, FIELD_TYPES, load_policy

_DIR = Path(tempfile.mkdtemp(prefix="atheris-policy-"))
_PATH = _DIR / "policy.toml"
_SHIPPED = Path(__file__).resolve().parent.parent / "consent" / "policies" / "skyplane.toml"


def TestOneInput(data: bytes) -> None:  # the name atheris calls
    _PATH.write_bytes(data)
    try:
        policy = load_policy(_PATH)
    except PolicyError:
        return
    if policy.version < 1 or policy.format not in ("loki", "json") or not policy.fields:
        raise AssertionError(f"invalid policy accepted: {policy}")
    check_endpoint(policy.endpoint)
    for name, spec in policy.fields.items():
        if not name.isidentifier() or spec.type not in FIELD_TYPES:
            raise AssertionError(f"bad field accepted: {name!r} {spec}")
        if spec.category not in CATEGORIES or not spec.description:
            raise AssertionError(f"bad field accepted: {name!r} {spec}")
    tomllib.loads(data.decode("utf-8"))  # it was TOML after all


def main() -> None:
    corpus = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    for directory in corpus:
        os.makedirs(directory, exist_ok=True)
        if not os.listdir(directory):
            (Path(directory) / "shipped.toml").write_bytes(_SHIPPED.read_bytes())
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
