"""The one exception hierarchy of the library.

The CLI maps these to a message and an exit code in one place, the
``reports_errors`` decorator (``consent/cli/_terminal.py``) each command wears, so
the commands behave the same when a host mounts them; the library never exits and
never prints a traceback itself.
"""

from __future__ import annotations

__all__ = [
    "BadInputError",
    "ConsentError",
    "CorruptFileError",
    "ExitCode",
    "InsecureEndpointError",
    "InvalidValueError",
    "OperationFailedError",
    "PolicyError",
    "StorageError",
    "UnknownKeyError",
    "UnknownSessionError",
    "UploadError",
]


class ExitCode:
    """Named exit codes. (Plain ints: ``enum`` would slow the decision path's import.)"""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


class ConsentError(Exception):
    """Base class: a problem the user can read about in one or two sentences."""

    exit_code: int = ExitCode.FAILURE


class BadInputError(ConsentError):
    """Bad usage or bad input: a value, a key, a file the user can fix."""

    exit_code = ExitCode.BAD_INPUT


class InvalidValueError(BadInputError):
    """A value of the wrong type or outside the accepted words."""


class UnknownKeyError(BadInputError):
    """A config key this tool does not own."""


class CorruptFileError(BadInputError):
    """A file that exists but cannot be parsed or has the wrong shape."""


class PolicyError(BadInputError):
    """A policy file that cannot be loaded or does not validate."""


class InsecureEndpointError(BadInputError):
    """An endpoint that would send data in the clear or to an unusable address."""


class UnknownSessionError(BadInputError):
    """A session id (or prefix) that matches no payload, or more than one."""


class OperationFailedError(ConsentError):
    """The input was fine, but the work could not be completed."""

    exit_code = ExitCode.FAILURE


class StorageError(OperationFailedError):
    """Writing or reading a file failed (full disk, permissions, hostile /tmp)."""


class UploadError(OperationFailedError):
    """Something that was due could not be delivered."""
