"""The red-team corpus (tests/redteam_corpus.py) through the real recording path.

Every case is recorded with ``consent.record_session(error=...)`` into the sandbox's
spool and read back from the written payload. A planted value, or any piece of it of
four or more characters that is neither a vocabulary word nor text of the template
itself, must not appear; at least 95% of the facts must survive. Real exception
objects of the SDKs, where installed, go through ``scrub_error``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

import consent
from consent.actions import apply_choice
from consent.profile import Scope
from consent.scrub import scrub_error
from consent.scrub.text import vocabulary
from tests.conftest import Sandbox
from tests.redteam_corpus import WORLDS, cases

_PIECE_RE = re.compile(r"[^\W_]+")
# fields that hold credentials: any four characters of them in a row is a leak
_SECRET_FIELDS = ("akid", "secret", "sas", "jwt", "token", "hostid", "password")


def _record_all(sandbox: Sandbox, texts: list[str]) -> list[str]:
    apply_choice("review", "init-flag", scope=Scope())  # review holds payloads: nothing is sent
    out = []
    for text in texts:
        session_id = consent.record_session(src="local", dst="local", runtime_s=1, error=text)
        assert session_id is not None
        (path,) = Path(sandbox.spool).glob(f"*/{session_id}/usage_stats.json")
        out.append(json.loads(path.read_bytes())["error"])
    return out


def _leaks(value: str, rest: str, out: str, secret: bool) -> list[str]:
    if value in out:
        return [value]
    words = vocabulary().words
    found = []
    for piece in _PIECE_RE.findall(value):
        if len(piece) < 4 or piece.lower() in words or (piece.isdigit() and len(piece) <= 4):
            continue
        if piece.lower() not in rest.lower() and piece.lower() in out.lower():
            found.append(piece)
    if secret:
        for start in range(len(value) - 3):
            window = value[start : start + 4]
            if (
                window.isalnum()
                and not window.isdigit()
                and window.lower() not in words
                and window not in rest
                and window in out
            ):
                found.append(window)
    return found


def test_redteam_corpus_leaks_nothing_and_keeps_the_facts(sandbox: Sandbox) -> None:
    corpus = cases()
    assert len(corpus) >= 200
    written = _record_all(sandbox, [text for text, _, _ in corpus])
    leaks = []
    kept = total = 0
    lost = []
    for (text, planted, facts), out in zip(corpus, written, strict=True):
        rest = text
        for value in planted.values():
            rest = rest.replace(value, " ")
        for field, value in planted.items():
            found = _leaks(value, rest, out, field in _SECRET_FIELDS)
            if found:
                leaks.append((field, found, out))
        for fact in facts:
            total += 1
            if fact in out:
                kept += 1
            else:
                lost.append((fact, out))
    assert not leaks, leaks[:10]
    assert kept / total >= 0.95, (kept, total, lost[:20])


def test_every_world_fills_every_field() -> None:
    fields = set(WORLDS[0])
    assert all(set(world) == fields for world in WORLDS)


# -- real exception objects ---------------------------------------------------------


def test_botocore_client_error() -> None:
    exceptions = pytest.importorskip("botocore.exceptions")
    world = WORLDS[0]
    response = {
        "Error": {
            "Code": "NoSuchBucket",
            "Message": "The specified bucket does not exist",
            "BucketName": world["bucket"],
        },
        "ResponseMetadata": {"RequestId": world["reqid"], "HostId": world["hostid"]},
    }
    exc = exceptions.ClientError(response, "ListObjectsV2")
    out = scrub_error(exc)
    assert out.startswith("ClientError: An error occurred (NoSuchBucket)")
    assert "ListObjectsV2" in out
    for value in (world["bucket"], world["reqid"], world["hostid"]):
        assert value not in out
    missing = exceptions.NoCredentialsError()
    assert scrub_error(missing) == "NoCredentialsError: Unable to locate credentials"
    profile = exceptions.ProfileNotFound(profile=world["name"])
    out = scrub_error(profile)
    assert out.startswith("ProfileNotFound: ") and world["name"] not in out
    endpoint = exceptions.EndpointConnectionError(
        endpoint_url=f"https://{world['bucket']}.s3.us-east-1.amazonaws.com/x"
    )
    out = scrub_error(endpoint)
    assert out.startswith("EndpointConnectionError: ") and "acme" not in out


def test_google_api_core_errors() -> None:
    exceptions = pytest.importorskip("google.api_core.exceptions")
    for world in WORLDS:
        exc = exceptions.NotFound(
            f"GET https://storage.googleapis.com/storage/v1/b/{world['bucket']}/o/x: "
            f"No such object: {world['bucket']}/{world['obj']}"
        )
        out = scrub_error(exc)
        assert out.startswith("NotFound: 404 GET ")
        assert world["bucket"] not in out
        for piece in _PIECE_RE.findall(world["obj"]):
            if len(piece) >= 4 and piece.lower() not in vocabulary().words:
                assert piece not in out
        forbidden = exceptions.Forbidden(
            f"{world['email']} does not have storage.objects.get access to the Google Cloud"
            " Storage object."
        )
        out = scrub_error(forbidden)
        assert out.startswith("Forbidden: 403 <email> does not have storage.objects.get")


def test_azure_core_errors() -> None:
    exceptions = pytest.importorskip("azure.core.exceptions")
    for world in WORLDS:
        text = (
            f"The specified container does not exist.\nRequestId:{world['guid']}\n"
            "Time:2024-05-01T12:34:56.7890123Z\nErrorCode:ContainerNotFound"
        )
        out = scrub_error(exceptions.ResourceNotFoundError(text))
        assert out.startswith("ResourceNotFoundError: The specified container")
        assert "ContainerNotFound" in out
        assert world["guid"] not in out
        auth = exceptions.ClientAuthenticationError(
            f"Server failed to authenticate the request. https://{world['azacct']}"
            f".blob.core.windows.net/{world['container']}?{world['sas']}"
        )
        out = scrub_error(auth)
        assert out.startswith("ClientAuthenticationError: ")
        for field in ("azacct", "container", "sas"):
            assert world[field] not in out


def test_paramiko_and_oserror() -> None:
    ssh = pytest.importorskip("paramiko.ssh_exception")
    world = WORLDS[0]
    assert (
        scrub_error(ssh.AuthenticationException("Authentication failed."))
        == "AuthenticationException: Authentication failed."
    )
    errors = {(world["ip4"], 22): ConnectionRefusedError(111, "Connection refused")}
    out = scrub_error(ssh.NoValidConnectionsError(errors))
    assert out.startswith("NoValidConnectionsError: ") and world["ip4"] not in out
    out = scrub_error(FileNotFoundError(2, "No such file or directory", world["wpath"]))
    assert out.startswith("FileNotFoundError: [Errno 2] No such file or directory")
    assert "Okonkwo" not in out and "payroll" not in out


def test_requests_http_error() -> None:
    requests = pytest.importorskip("requests")
    world = WORLDS[1]
    exc = requests.exceptions.HTTPError(
        f"404 Client Error: Not Found for url: https://{world['dotted']}/v2/{world['project']}"
    )
    out = scrub_error(exc)
    assert out.startswith("HTTPError: 404 Client Error: Not Found for url: <uri:http>")


def _skyplane_exceptions() -> ModuleType:
    """skyplane/exceptions.py of an installed Skyplane, loaded alone (its package needs
    the host's dependencies; the exceptions module needs none)."""
    spec = importlib.util.find_spec("skyplane")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("skyplane is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "exceptions.py"
    module_spec = importlib.util.spec_from_file_location("_skyplane_exceptions", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_skyplane_exceptions() -> None:
    exceptions = _skyplane_exceptions()
    world = WORLDS[2]
    exc = exceptions.MissingBucketException(
        f"Source bucket s3://{world['bucket']} does not exist or is not readable."
    )
    out = scrub_error(exc)
    assert (
        out == "MissingBucketException: Source bucket <uri:s3> does not exist or is not readable."
    )
    out = scrub_error(exceptions.NoSuchObjectException(world["key"]))
    assert out.startswith("NoSuchObjectException: ") and "hvidberg" not in out.lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interface 00:1A:2B:3C:4D:5E down", "interface <id> down"),
        ("mac 00-1a-2b-3c-4d-5e.", "mac <id>."),
        ("password is dragon", "password is <secret>"),
        ("the password is incorrect", "the password is incorrect"),
        ("Bucket: Quarterly Reports 2024", "Bucket: <name> 2024"),
        ("owner: Bob White", "owner: <name>"),
        ("Transfer to Voltra Finance Q3 failed", "Transfer to <name> Q3 failed"),
        ("Error: Zentrix Data is gone", "Error: <name> is gone"),
        ("Invalid SAS sv=2021-08-06&se=2024-01-01&sp=r&sig=abc%2Bdef", "Invalid <name> <secret>"),
        ("Permission 'storage.objects.get' denied", "Permission 'storage.objects.get' denied"),
        ('{"reason": "quotaExceeded"}', '{"reason": "quotaExceeded"}'),
        ("--max-instances 4 failed", "--max-instances 4 failed"),
        ("--zentrix-raw 4 failed", "--<name> 4 failed"),
        (
            "(SkuNotAvailable) The requested size is not available in location 'eastus2'.",
            "(SkuNotAvailable) The requested size is not available in location 'eastus2'.",
        ),
        ("AADSTS700016: Application not found", "AADSTS700016: Application not found"),
        ("socket.gaierror: [Errno -2] Name or service not known", None),
        (
            "The specified bucket does not exist: logs",
            "The specified bucket does not exist: <name>",
        ),
        ("No such file or directory: backups", "No such file or directory: <name>"),
        ("Object not found: NoSuchKey", None),
        ("copy to data01 failed on team42", "copy to <name> failed on <name>"),
        ("ListObjectsV2 on ec2 with gp3 volumes", None),
        ("not enough m5.8xlarge capacity in us-east-1a", None),
        ("Invalid value for '--solver': 'ilp' is not one of 'direct', 'ron', 'ilp'.", None),
        ("--compress lz4 --solver ron", None),
        ("type 'n2-standard-32' in zone us-west1-b", None),
        ("size Standard_B2s or 'g4dn.xlarge'", None),
        ("near acme.large and zentrix-standard", "near <name> and <name>"),
        ("Bucket already exists: us-east-1", None),
    ],
)
def test_structural_rules_found_by_the_red_team(text: str, expected: str | None) -> None:
    from consent.scrub import scrub_text

    assert scrub_text(text) == (text if expected is None else expected)


# Where the grammar marks a word as data, even an English word is hidden; elsewhere a
# bucket named "logs" is the honest limit (docs/security.md), measured here, not held.
_MARKED_WORD_PLACES = (
    "<Error><Code>NoSuchBucket</Code><BucketName>{w}</BucketName></Error>",
    "404 GET https://storage.googleapis.com/storage/v1/b/{w}/o: No such object: {w}/x",
    "Bucket '{w}' not found",
    "NoSuchBucket: The specified bucket does not exist: {w}",
    "[Errno 2] No such file or directory: {w}",
)


@pytest.mark.parametrize("template", _MARKED_WORD_PLACES)
@pytest.mark.parametrize("word", ["backups", "data", "logs", "archive", "reports", "finance"])
def test_word_named_data_is_hidden_where_the_grammar_marks_it(template: str, word: str) -> None:
    from consent.scrub import scrub_text

    assert not re.search(rf"\b{word}\b", scrub_text(template.format(w=word)))
