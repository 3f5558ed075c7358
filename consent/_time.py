"""The one timestamp format of this package: UTC, to the second, with a ``Z``.

Used by every file the package writes (state files, receipts, the send log) and
every payload, so one reader parses them all. Standard library only.
"""

from __future__ import annotations

import time

__all__ = ["STAMP_FORMAT", "utc_stamp"]

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_stamp(seconds: float | None = None) -> str:
    """``seconds`` since 1970 (now when ``None``) as ``2026-01-02T03:04:05Z``.

    Raises ``OverflowError``, ``OSError`` or ``ValueError`` for a moment the
    platform cannot represent, as :func:`time.gmtime` does.
    """
    return time.strftime(STAMP_FORMAT, time.gmtime(seconds))
