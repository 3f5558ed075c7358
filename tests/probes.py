"""Which modules a piece of code imports, measured in a fresh interpreter.

The decision path and the session path must import only the standard library;
these tests run the code in a subprocess, since the test process has imported
everything already.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

HEAVY = ("typer", "rich", "questionary", "prompt_toolkit", "httpx", "click")

# No json in the child: it imports re, which the session path must not need.
_PROBE = """
import sys
before = set(sys.modules)
result = None
{body}
after = set(sys.modules)
print(repr({{"new": sorted(after - before), "result": result}}))
"""


def _top(name: str) -> str:
    return name.split(".")[0]


@dataclass(frozen=True)
class ImportProbe:
    new: list[str]
    """Modules the code imported, in full dotted form."""
    result: Any
    """Whatever the code assigned to ``result`` (JSON)."""
    stderr: str

    @property
    def heavy(self) -> list[str]:
        return sorted(name for name in self.new if _top(name) in HEAVY)

    @property
    def foreign(self) -> list[str]:
        """Modules that are neither the standard library's nor ``consent``'s."""
        allowed = sys.stdlib_module_names | {"consent"}
        return sorted(name for name in self.new if _top(name) not in allowed)


def imports_of(body: str) -> ImportProbe:
    """Run ``body`` in a fresh interpreter (with this process's environment)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    data = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    return ImportProbe(data["new"], data["result"], proc.stderr)
