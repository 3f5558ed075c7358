"""An opt-out that lands while a recorder is between its last decision check and its
write: "opting out drops every unsent payload" (docs/architecture.md §1).

Found while building the soak (tests/soak/harness.py): the recorder checks the
decision, then writes; `stats off` drops the unsent payloads in between; the payload
written after it stays pending, and is sent once collection is turned on again.
The recorder is held at that point deterministically (a pipe), not with sleeps.
"""

from __future__ import annotations

import subprocess
import sys

from consent.profile import Scope
from consent.spool import Spool
from tests.conftest import Sandbox, run_cli
from tests.upload_helpers import acknowledge

# A recorder held after its last decision check, just before it opens the spool.
_HELD_RECORDER = """
import sys
import consent
from consent import _spoolwrite

real = _spoolwrite.open_root
def held(*args, **kwargs):
    sys.stdout.write("held\\n")
    sys.stdout.flush()
    sys.stdin.readline()
    return real(*args, **kwargs)
_spoolwrite.open_root = held
print(consent.record_session(
    argv=["cp", "a", "b"], src="aws:us-east-1", dst=["gcp:us-central1"], runtime_s=1.0
))
"""


def test_a_payload_written_during_an_opt_out_is_dropped_too(sandbox: Sandbox) -> None:
    acknowledge()
    recorder = subprocess.Popen(
        [sys.executable, "-c", _HELD_RECORDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert recorder.stdout is not None
    assert recorder.stdout.readline() == "held\n"  # decided "on", not yet written

    off = run_cli("stats", "off")
    assert off.returncode == 0, off.stderr
    out, err = recorder.communicate("\n", timeout=60)
    assert recorder.returncode == 0, err

    unsent = [e.session_id for e in Spool.open(Scope()).entries() if e.state in ("pending", "held")]
    assert unsent == [], f"recorded {out.strip()} after the opt-out, and kept it to send"
