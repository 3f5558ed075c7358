"""consent: ask-first, show-everything anonymous usage statistics for CLI tools.

The decision path (``import consent; consent.is_enabled()``) and the session path
import only the standard library; the CLI lives in ``consent.cli``.
"""

from __future__ import annotations

from consent._exceptions import ConsentError
from consent.decision import Decision, decide, is_enabled

__all__ = ["ConsentError", "Decision", "__version__", "decide", "is_enabled"]

__version__ = "0.1.0"
