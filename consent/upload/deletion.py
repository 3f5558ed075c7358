"""Deletion requests: ask every endpoint to delete what it holds for some client ids.

Sent whatever the on/off decision (deleting is the user's own request), in the
policy's format, with the same transport and retries as payloads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence

from consent._exceptions import ConsentError, InvalidValueError, UploadError
from consent._time import utc_stamp
from consent.profile import DEFAULT_PROFILE, AppProfile
from consent.upload.transport import DEFAULT_LIMITS, _client, _deliver
from consent.upload.wire import _headers

__all__ = ["send_deletion_request"]


def send_deletion_request(
    client_ids: Sequence[str],
    *,
    profile: AppProfile = DEFAULT_PROFILE,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
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
    env = os.environ if environ is None else environ
    try:
        policy = load_policy(profile=profile, environ=env)
        try:
            config = load_config(profile.config_path(env))
        except ConsentError:
            config = {}
        endpoints = resolve_endpoints(policy.endpoint, config, env, profile.endpoint_env)
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
