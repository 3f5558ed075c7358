"""`stats forget` stopped between retiring the old client id and replacing it.

Forget retires the old id in the spool (writers then drop payloads under it) and
then gives the consent record a new id. A forget stopped between the two leaves the
record naming a retired id: every later recording under it would be dropped while
the recorder still reports a session id. Found by the soak (tests/soak/harness.py),
which SIGKILLs forgets at random.
"""

from __future__ import annotations

import subprocess
import sys

from consent.profile import Scope
from consent.record import load_record
from consent.spool import Spool
from tests.conftest import Sandbox, run_cli
from tests.upload_helpers import acknowledge, make_payloads

# A forget whose rotation of the client id is interrupted: by Ctrl-C, or by SIGKILL.
_STOPPED_FORGET = """
import os, signal, sys
import consent.forget as forget
from consent.profile import Scope
real = forget._rotate_client_id
calls = []
def stopped(path):
    calls.append(path)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if len(calls) == 1:
        raise KeyboardInterrupt  # Ctrl-C, once: the first try of the rotation
    return real(path)
forget._rotate_client_id = stopped
try:
    forget.forget(scope=Scope())
except KeyboardInterrupt:
    print("interrupted")
"""


def _stopped_forget(how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _STOPPED_FORGET, how],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _record() -> str:
    result = run_cli(
        "record", "--src", "aws:us-east-1", "--dst", "aws:us-west-2", "--runtime-s", "1",
        "--", "cp", "a", "b",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_ctrl_c_during_forget_still_replaces_the_retired_client_id(sandbox: Sandbox) -> None:
    old_id = acknowledge()
    make_payloads(1)
    result = _stopped_forget("interrupt")
    assert result.stdout.strip() == "interrupted", result.stderr  # Ctrl-C still ends it

    record = load_record(sandbox.record)
    assert record is not None and record.client_id != old_id
    assert old_id in Spool.open(Scope()).retired_ids()
    session_id = _record()
    assert session_id in {e.session_id for e in Spool.open(Scope()).entries()}


def test_a_forget_killed_before_the_new_id_loses_no_later_session(sandbox: Sandbox) -> None:
    old_id = acknowledge()
    make_payloads(1)
    result = _stopped_forget("kill")
    assert result.returncode == -9
    record = load_record(sandbox.record)
    assert record is not None and record.client_id == old_id  # not replaced: it was killed
    assert old_id in Spool.open(Scope()).retired_ids()

    session_id = _record()  # reported as recorded...
    assert session_id in {e.session_id for e in Spool.open(Scope()).entries()}  # ...so it is kept
