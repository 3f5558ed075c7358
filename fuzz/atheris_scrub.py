"""Coverage-guided fuzzing of the scrubber with atheris (libFuzzer). Not run by pytest.

    pip install atheris
    python fuzz/atheris_scrub.py -max_total_time=60 /tmp/consent-corpus/scrub

Properties, for any input: the scrubbing core never raises (so the fail-closed
fallback never hides a bug), the result fits ``max_length`` and holds no control
character or lone surrogate, a known-format secret planted between two fuzzed
strings never survives, and neither does a made-up name (the allow-list). A crash
writes ``crash-<sha1>`` in the working directory; keep it as a test in
tests/fuzz/test_regressions.py.
"""

from __future__ import annotations

import re
import sys

import atheris  # type: ignore  # no stubs, and not installed in CI

with atheris.instrument_imports():
    from consent.scrub.argv import _scrub_arguments
    from consent.scrub.text import _scrub_text

# Known formats, none with "+/" (that case is test_base64_with_plus_slash_is_scrubbed).
SECRETS = (
    "AKIAIOSFODNN7QWERTYZ",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
    "xoxb-123456789012-aB3dE5fG7hJ9kL1mN3pQ5rS7",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc9Kx",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
)
# a made-up word no vocabulary holds: it may survive only as part of the fuzzed text
NAME = "zorvakquibnet"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def TestOneInput(data: bytes) -> None:  # the name atheris calls
    fdp = atheris.FuzzedDataProvider(data)
    max_length = fdp.ConsumeIntInRange(0, 700)
    secret = SECRETS[fdp.ConsumeIntInRange(0, len(SECRETS) - 1)]
    before = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 200))
    after = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 200))
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())

    result = _scrub_text(text, max_length, frozenset())
    if len(result) > max_length or _CONTROL.search(result):
        raise AssertionError(f"bad result {result!r} for {text!r}")

    planted = f"{before} {secret} {after}"
    scrubbed = _scrub_text(planted, 100_000, frozenset())
    if secret in scrubbed:
        raise AssertionError(f"{secret!r} survived in {scrubbed!r}")

    named = _scrub_text(f"{before} {NAME} {after}", 100_000, frozenset())
    if NAME in named and NAME not in before + after:
        raise AssertionError(f"{NAME!r} survived in {named!r}")

    _scrub_arguments([before, "--token", secret, after, text], frozenset(), frozenset())


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
