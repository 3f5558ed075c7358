"""consent: ask-first, show-everything anonymous usage statistics for CLI tools.

The decision path (``import consent; consent.is_enabled()``) and the session path
import only the standard library; the CLI lives in ``consent.cli``.
"""

from __future__ import annotations

from consent._exceptions import ConsentError
from consent.decision import Decision, decide, is_enabled

TYPE_CHECKING = False  # importing typing for this would cost the decision path ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from consent._session import record_session as record_session
    from consent._session import session as session

__all__ = [
    "ConsentError",
    "Decision",
    "__version__",
    "decide",
    "is_enabled",
    "record_session",
    "session",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The session API is loaded on first use, so `consent.is_enabled()` stays as cheap
    # as it is.
    if name in ("session", "record_session"):
        from consent import _session

        value = getattr(_session, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'consent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
