"""What the scrubber derives from its own source, cached beside its bytecode.

Two things cost a host process far more to build than to load, and neither depends
on the text being scrubbed:

- the compiled regular expressions: ``re`` parses and compiles a pattern in pure
  Python, about 8 ms for the error-text rules, while the regex engine itself
  (``_sre``, in C) builds a pattern from its compiled code in microseconds;
- the vocabulary's word sets: splitting and hashing 18,000 words takes about 3 ms.

A host that records a failed transfer would pay both on every run (docs/architecture.md
§5, "What a host pays per transfer"). So, like a ``.pyc``, each is kept in a
``marshal`` file in this package's ``__pycache__`` (or under ``PYTHONPYCACHEPREFIX``),
keyed by what it was built from:

- a pattern by its text (flags are written inline), and the whole file by the interpreter
  (``sys.version``) and the engine (``_sre.MAGIC``, ``_sre.CODESIZE``), since the
  compiled code is theirs;
- the vocabulary by its file's size and modification time, as a ``.pyc`` is keyed
  by its source's.

A cache that is missing, stale, unreadable or refused by the engine is ignored: the
pattern is compiled by ``re`` (imported only then), and the cache is written again
when the process exits.
Either way the pattern is the one ``re.compile`` gives, since the code is what
``re``'s own compiler made. The cache is written only where Python would write
bytecode (not under ``PYTHONDONTWRITEBYTECODE``, not where the directory is
read-only); a failure to write it is never an error. It holds only this package's
own patterns and words, never scrubbed text.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]  # the engine under re; typeshed has no stub
import marshal
import os
import sys

from consent._spoolwrite import atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any

__all__ = ["cache_file", "compile_pattern", "load", "store"]

_CACHE_FORMAT = 1
# The compiled code belongs to this interpreter and this engine.
_ENGINE = (sys.version, _sre.MAGIC, _sre.CODESIZE)

# what ``_sre.compile`` takes after the pattern's text: final flags, code, number of
# groups, name -> index, index -> name
_Entry = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]

_patterns: dict[str, _Entry] | None = None
# what this process compiled: a pattern asked for again (argv's, per value) is built once
_compiled: dict[str, re.Pattern[str]] = {}
_save_at_exit = False
# The scrubber has fewer than a hundred patterns; past this many the cache holds
# stale ones (edited rules), and starts over rather than grow.
_MAX_PATTERNS = 512


def cache_file(name: str) -> str:
    """Where the cache called ``name`` lives: this package's bytecode directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    prefix = sys.pycache_prefix
    # importlib's own layout: under a prefix, the source directory's absolute path
    if prefix:
        directory = os.path.join(prefix, here.lstrip(os.sep))
    else:
        directory = os.path.join(here, "__pycache__")
    return os.path.join(directory, f"{name}.{sys.implementation.cache_tag}.marshal")


def load(name: str, key: Any) -> object:
    """The value stored under ``key`` in the cache ``name``; None if there is none."""
    try:
        with open(cache_file(name), "rb") as file:
            # our own file beside our own bytecode, trusted as a .pyc is
            stored = marshal.loads(file.read())  # noqa: S302
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if type(stored) is tuple and len(stored) == 3 and stored[:2] == (_CACHE_FORMAT, key):
        return stored[2]
    return None


def store(name: str, key: Any, value: Any) -> None:
    """Save ``value`` under ``key`` in the cache ``name``, where Python writes bytecode."""
    if sys.dont_write_bytecode:
        return
    path = cache_file(name)
    try:
        data = marshal.dumps((_CACHE_FORMAT, key, value))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # not durable: a cache lost in a power cut is rebuilt on the next run
        atomic_write(path, data, 0o644, durable=False)
    except (OSError, ValueError):
        pass  # a read-only install or a full disk: the next run compiles again


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``re.compile(pattern)``, from the cached compiled code when there is some.

    Flags go inline (``(?i)``), so that no caller needs ``re`` for its constants.
    """
    global _patterns, _save_at_exit
    known = _compiled.get(pattern)
    if known is not None:
        return known
    if _patterns is None:
        stored = load("patterns", _ENGINE)
        _patterns = stored if type(stored) is dict else {}
    entry = _patterns.get(pattern)
    if entry is not None:
        try:
            compiled: re.Pattern[str] = _sre.compile(pattern, *entry)
            _compiled[pattern] = compiled
            return compiled
        except (TypeError, ValueError, RuntimeError, OverflowError):
            pass  # refused by the engine (a damaged cache): compile it afresh below
    compiled, entry = _compile_with_re(pattern)
    if entry is not None:
        if len(_patterns) >= _MAX_PATTERNS:
            _patterns = {}
        if not _save_at_exit:
            # once, for everything this process compiles: a cold cache misses every
            # pattern, and one write beats one per pattern
            import atexit

            atexit.register(_save_patterns)
            _save_at_exit = True
        _patterns[pattern] = entry
    _compiled[pattern] = compiled
    return compiled


def _save_patterns() -> None:
    try:
        if _patterns is not None:
            store("patterns", _ENGINE, _patterns)
    except BaseException:  # noqa: S110 - a Ctrl-C as the host exits: no traceback for a cache
        pass


def _compile_with_re(pattern: str) -> tuple[re.Pattern[str], _Entry | None]:
    """The pattern as ``re.compile`` makes it, and the code to cache for it.

    The code comes from ``re``'s own compiler, the steps of ``re._compiler.compile``;
    where those private steps differ (another interpreter), nothing is cached.
    """
    import re

    compiled = re.compile(pattern)
    try:
        from re import _compiler, _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern, 0)
        code = [int(op) for op in _compiler._code(parsed, 0)]
        state = parsed.state
        names = [None] * state.groups
        for group_name, index in state.groupdict.items():
            names[index] = group_name
        entry: _Entry = (state.flags, code, state.groups - 1, dict(state.groupdict), tuple(names))
        rebuilt = _sre.compile(pattern, *entry)
    except Exception:  # any change in re's internals means: no cache
        return compiled, None
    if (rebuilt.flags, rebuilt.groups, rebuilt.groupindex) != (
        compiled.flags,
        compiled.groups,
        compiled.groupindex,
    ):
        return compiled, None
    return compiled, entry
