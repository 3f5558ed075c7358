"""Deliver spooled payloads: Loki push or a JSON array, batched, retried, receipted.

One module per job:

- :mod:`~consent.upload.wire`: which payloads may leave, and the exact request bytes;
- :mod:`~consent.upload.transport`: one POST bounded in time, retries and backoff;
- :mod:`~consent.upload.send`: a send run over the spool, receipts, the send log;
- :mod:`~consent.upload.deletion`: deletion requests for ``stats forget``;
- :mod:`~consent.upload.spawn`: the detached background sender and its ``main``.

The host's session path imports only the spawner (``os`` calls and ``posix_spawn``). This
package imports nothing at import time: each public name loads its module on first
use, so ``from consent.upload import start_background_flush`` never loads httpx.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing, like importlib, stays off the host's session path
if TYPE_CHECKING:  # the names below, as the lazy loader serves them
    from typing import Any

    from consent._spoolwrite import SEND_LOG as SEND_LOG
    from consent.upload.deletion import send_deletion_request as send_deletion_request
    from consent.upload.send import EndpointOutcome as EndpointOutcome
    from consent.upload.send import Failure as Failure
    from consent.upload.send import Plan as Plan
    from consent.upload.send import SendResult as SendResult
    from consent.upload.send import _log_run as _log_run
    from consent.upload.send import last_error as last_error
    from consent.upload.send import plan_send as plan_send
    from consent.upload.send import run_background as run_background
    from consent.upload.send import send_pending as send_pending
    from consent.upload.spawn import FLUSH_INTERVAL_S as FLUSH_INTERVAL_S
    from consent.upload.spawn import _children as _children
    from consent.upload.spawn import _profile_from_json as _profile_from_json
    from consent.upload.spawn import _profile_json as _profile_json
    from consent.upload.spawn import main as main
    from consent.upload.spawn import start_background_flush as start_background_flush
    from consent.upload.transport import DEFAULT_LIMITS as DEFAULT_LIMITS
    from consent.upload.transport import Limits as Limits
    from consent.upload.transport import _client as _client
    from consent.upload.transport import _post as _post
    from consent.upload.wire import PlannedRequest as PlannedRequest
    from consent.upload.wire import _check_payload as _check_payload

__all__ = [
    "DEFAULT_LIMITS",
    "EndpointOutcome",
    "Failure",
    "Limits",
    "Plan",
    "PlannedRequest",
    "SendResult",
    "last_error",
    "plan_send",
    "send_deletion_request",
    "send_pending",
    "start_background_flush",
]

# name -> (module, attribute); the private names are kept for the tests and benches
# that reached into the one-module version.
_WHERE: dict[str, tuple[str, str]] = {
    "DEFAULT_LIMITS": ("transport", "DEFAULT_LIMITS"),
    "Limits": ("transport", "Limits"),
    "_client": ("transport", "_client"),
    "_post": ("transport", "_post"),
    "PlannedRequest": ("wire", "PlannedRequest"),
    "_check_payload": ("wire", "_check_payload"),
    "EndpointOutcome": ("send", "EndpointOutcome"),
    "Failure": ("send", "Failure"),
    "Plan": ("send", "Plan"),
    "SendResult": ("send", "SendResult"),
    "last_error": ("send", "last_error"),
    "plan_send": ("send", "plan_send"),
    "send_pending": ("send", "send_pending"),
    "run_background": ("send", "run_background"),
    "_log_run": ("send", "_log_run"),
    "send_deletion_request": ("deletion", "send_deletion_request"),
    "start_background_flush": ("spawn", "start_background_flush"),
    "main": ("spawn", "main"),
    "FLUSH_INTERVAL_S": ("spawn", "FLUSH_INTERVAL_S"),
    "_children": ("spawn", "_children"),
    "_profile_json": ("spawn", "_profile_json"),
    "_profile_from_json": ("spawn", "_profile_from_json"),
}
# The sender's files belong to the spool; these names stay importable from here.
_SPOOL_NAMES = {
    "SEND_LOG": "SEND_LOG",
    "_FLUSH_STAMP": "FLUSH_STAMP",
    "_BACKOFF_FILE": "BACKOFF_FILE",
}


def __getattr__(name: str) -> Any:
    if name in _SPOOL_NAMES:
        from consent import _spoolwrite

        return getattr(_spoolwrite, _SPOOL_NAMES[name])
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    loaded = __import__(f"{__name__}.{module}", fromlist=[attribute])
    return getattr(loaded, attribute)


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE, *_SPOOL_NAMES})
