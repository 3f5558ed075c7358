"""Redaction of argv, error text and region tags before anything reaches the spool.

Everything here is an allow-list and fails closed: what is not known to be safe
becomes a marker from :data:`MARKERS`, and on anything unexpected the scrubbers return
a marker rather than raise or pass text through.

Split by job: ``_rules`` (markers and the value classifier), ``argv``, ``regions``
and ``text``. Importing this package and scrubbing argv stays cheap: the error-text
rules compile and the vocabulary loads only on the first :func:`scrub_text` or
:func:`scrub_error`.
"""

from __future__ import annotations

from consent.scrub._rules import MARKERS
from consent.scrub.argv import scrub_arguments
from consent.scrub.regions import is_region_tag, normalize_region

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = [
    "MARKERS",
    "is_region_tag",
    "normalize_region",
    "scrub_arguments",
    "scrub_error",
    "scrub_text",
]


def scrub_text(text: str, max_length: int = 512, *, safe_values: Collection[str] = ()) -> str:
    """Keep only known words, codes, numbers and regions of ``text``; mark the rest.

    See :func:`consent.scrub.text.scrub_text`.
    """
    from consent.scrub.text import scrub_text as scrub

    return scrub(text, max_length, safe_values=safe_values)


def scrub_error(exc: BaseException, *, safe_values: Collection[str] = ()) -> str:
    """``"TypeName: scrubbed message"`` for an exception, scrubbed once; never raises.

    See :func:`consent.scrub.text.scrub_error`.
    """
    from consent.scrub.text import scrub_error as scrub

    return scrub(exc, safe_values=safe_values)
