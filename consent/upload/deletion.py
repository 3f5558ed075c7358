"""Deletion requests: ask every endpoint to delete what it holds for some client ids.

Sent whatever the on/off decision (deleting is the user's own request), in the
policy's format, with the same transport and retries as payloads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from consent._exceptions import ConsentError, InvalidValueError, UploadError
from consent._time import utc_stamp
from consent.profile import Scope
from consent.upload.transport import DEFAULT_LIMITS, _client, _deliver
from consent.upload.wire import _headers

__all__ = ["send_deletion_request"]


def send_deletion_request(client_ids: Sequence[str], *, scope: Scope) -> list[str]:
    """Ask every endpoint to delete what it holds for ``client_ids``; the ones that accepted.

    Sent whatever the on/off decision: deleting is the user's own request. Raises
    :class:`UploadError` when no endpoint answered 2xx, for any reason.
    """
    from consent._urls import resolve_endpoints
    from consent.config import load_config
    from consent.policy import load_policy

    ids = [str(cid) for cid in client_ids]
    if not ids:
        raise InvalidValueError("A deletion request needs at least one client id.")
    try:
        policy = load_policy(scope.policy_path)
        try:
            config = load_config(scope.config_file)
        except ConsentError:
            config = {}
        endpoints = resolve_endpoints(policy.endpoint, config, scope)
    except ConsentError as exc:
        raise UploadError(f"The deletion request was not sent: {exc}") from exc
    record = {
        "type": "deletion_request",
        "client_ids": ids,
        "requested_at": utc_stamp(),
    }
    text = json.dumps(record, separators=(",", ":"))
    if policy.format == "loki":
        doc: object = {
            "streams": [
                {"stream": {"type": "deletion_request"}, "values": [[str(time.time_ns()), text]]}
            ]
        }
    else:
        doc = [record]
    body = json.dumps(doc, separators=(",", ":")).encode()
    headers = _headers([*ids, str(record["requested_at"])])
    accepted: list[str] = []
    problems: list[str] = []
    for url in endpoints:
        with _client(url, DEFAULT_LIMITS) as client:
            answer = _deliver(client, url, body, headers, DEFAULT_LIMITS)
        if answer.accepted:
            accepted.append(url)
        else:
            problems.append(f"{url}: {answer.detail}")
    if not accepted:
        raise UploadError(f"The deletion request could not be delivered ({'; '.join(problems)}).")
    return accepted
