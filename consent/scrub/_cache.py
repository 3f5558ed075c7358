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
  by its source's. A scrub asks about a few dozen words, so the vocabulary's file is
  read a piece at a time (:class:`IndexedFile`): a small index, then only the word
  groups asked about.

Each pattern is built the first time it is used (:func:`compile_pattern`), so a
scrub pays only for the rules its text runs. A cache that is missing, stale,
unreadable or refused by the engine is ignored: the pattern is compiled by ``re``
(imported only then), and the cache is written again when the process exits, with
every pattern declared in the process, used or not.
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

__all__ = [
    "IndexedFile",
    "cache_file",
    "compile_pattern",
    "load",
    "open_indexed",
    "store",
    "store_indexed",
]

_CACHE_FORMAT = 2
# The compiled code belongs to this interpreter and this engine.
_ENGINE = (sys.version, _sre.MAGIC, _sre.CODESIZE)

# what ``_sre.compile`` takes after the pattern's text: final flags, code, number of
# groups, name -> index, index -> name
_Entry = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]

# pattern -> its entry, marshalled: one bytes object per pattern rather than the five
# containers of an entry, which the garbage collector would walk for the rest of the
# host's life (each compile reads its entry afresh, and drops it)
_patterns: dict[str, bytes] | None = None
# what this process compiled: a pattern asked for again (argv's, per value) is built once
_compiled: dict[str, re.Pattern[str]] = {}
_save_at_exit = False
# every pattern declared in this process, built or not (a dict: ordered, no repeats)
_declared: dict[str, None] = {}
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
    try:
        data = marshal.dumps((_CACHE_FORMAT, key, value))
    except ValueError:
        return
    _write(name, data)


def _write(name: str, data: bytes) -> None:
    if sys.dont_write_bytecode:
        return
    path = cache_file(name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # not durable: a cache lost in a power cut is rebuilt on the next run
        atomic_write(path, data, 0o644, durable=False)
    except (OSError, ValueError):
        pass  # a read-only install or a full disk: the next run compiles again


# -- a cache read in pieces ------------------------------------------------------------
#
# Layout: the header's length (4 bytes, little-endian), the header, a marshal of
# (format, key, index, length of the data), then the data. The index is the caller's.
_HEADER_GUESS = 16384
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class IndexedFile:
    """A cache file whose data is read a piece at a time, as its index directs.

    Each read opens the file afresh and checks, by ``fstat``, that it is still the file
    the index was read from: a cache rewritten meanwhile (another process, a new
    vocabulary) is never read with a stale index, and no descriptor is held between
    reads, where the host could close it or reuse its number for a file of its own.
    """

    __slots__ = ("base", "identity", "index", "length", "path")

    def __init__(
        self, path: str, identity: tuple[int, ...], base: int, length: int, index: object
    ) -> None:
        self.path = path
        self.identity = identity
        self.base = base
        self.length = length
        self.index = index

    def read(self, start: int, end: int) -> bytes | None:
        """The data's bytes ``start:end``; None if the file changed or cannot be read."""
        if not 0 <= start <= end <= self.length:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | _O_CLOEXEC)
        except OSError:
            return None
        try:
            if _identity(os.fstat(fd)) != self.identity:
                return None
            data = os.pread(fd, end - start, self.base + start)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data if len(data) == end - start else None


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def open_indexed(name: str, key: Any) -> IndexedFile | None:
    """The cache ``name`` if it holds data stored under ``key``; None otherwise.

    Only the header is read here. A file whose size is not exactly what its header
    says (truncated, appended to, another format) is refused.
    """
    path = cache_file(name)
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return None
    try:
        stat = os.fstat(fd)
        head = os.read(fd, _HEADER_GUESS)
        size = int.from_bytes(head[:4], "little")
        if len(head) < 4 or 4 + size > stat.st_size:
            return None
        while len(head) < 4 + size:
            more = os.read(fd, 4 + size - len(head))
            if not more:
                return None
            head += more
        # our own file beside our own bytecode, trusted as a .pyc is
        header = marshal.loads(head[4 : 4 + size])  # noqa: S302
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    if not (type(header) is tuple and len(header) == 4 and header[:2] == (_CACHE_FORMAT, key)):
        return None
    index, length = header[2], header[3]
    if type(length) is not int or 4 + size + length != stat.st_size:
        return None
    return IndexedFile(path, _identity(stat), 4 + size, length, index)


def store_indexed(name: str, key: Any, index: Any, data: bytes) -> None:
    """Save ``data`` and its ``index`` under ``key``, for :func:`open_indexed`."""
    try:
        header = marshal.dumps((_CACHE_FORMAT, key, index, len(data)))
    except ValueError:
        return
    _write(name, len(header).to_bytes(4, "little") + header + data)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``re.compile(pattern)``, built from the cached compiled code when first used.

    Flags go inline (``(?i)``), so that no caller needs ``re`` for its constants. A
    module's patterns are declared at import, but a scrub uses a fraction of them (an
    error text that holds no URL, quote or key never runs those rules): each is built
    the first time one of its methods is called (:class:`_LazyPattern`). The
    stand-in is not an ``re.Pattern`` to ``isinstance`` or to ``re.sub(pattern, ...)``:
    callers use its methods and attributes, which are the compiled pattern's.
    """
    known = _compiled.get(pattern)
    if known is not None:
        return known
    _declared[pattern] = None
    # behaves as the compiled pattern for every attribute: a stand-in until first use
    return _LazyPattern(pattern)  # type: ignore[return-value]


class _LazyPattern:
    """A pattern built on first use, whose methods are then the compiled pattern's own.

    The first attribute asked for builds the pattern and copies its methods into this
    object's slots, so that every later call is the engine's bound method, with no
    Python frame in between.
    """

    __slots__ = (
        "findall",
        "finditer",
        "flags",
        "fullmatch",
        "groupindex",
        "groups",
        "match",
        "pattern",
        "search",
        "split",
        "sub",
        "subn",
    )

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __getattr__(self, name: str) -> Any:
        if name == "pattern":  # not set yet (a half-built copy): nothing to build from
            raise AttributeError(name)
        compiled = _build(self.pattern)
        for attribute in self.__slots__:
            setattr(self, attribute, getattr(compiled, attribute))
        return getattr(compiled, name)


def _build(pattern: str) -> re.Pattern[str]:
    global _patterns, _save_at_exit
    known = _compiled.get(pattern)
    if known is not None:
        return known
    if _patterns is None:
        stored = load("patterns", _ENGINE)
        _patterns = stored if type(stored) is dict else {}
    stored_entry = _patterns.get(pattern)
    if stored_entry is not None:
        try:
            # our own file beside our own bytecode, trusted as a .pyc is
            compiled: re.Pattern[str] = _sre.compile(pattern, *marshal.loads(stored_entry))  # noqa: S302
            _compiled[pattern] = compiled
            return compiled
        except (TypeError, ValueError, EOFError, RuntimeError, OverflowError):
            pass  # not an entry, or refused by the engine (a damaged cache): compile afresh
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
        _patterns[pattern] = marshal.dumps(entry)
    _compiled[pattern] = compiled
    return compiled


def _save_patterns() -> None:
    """Write the cache, once this process has compiled a pattern ``re``'s way.

    ``re`` is loaded by then, so every pattern declared but not yet built is compiled
    too: the next process finds all of them, not only those this one used.
    """
    if sys.dont_write_bytecode or not _can_write(cache_file("patterns")):
        return  # nothing will be written: compiling the rest would be for nothing
    try:
        if _patterns is not None:
            for pattern in list(_declared):
                if pattern not in _patterns and len(_patterns) < _MAX_PATTERNS:
                    entry = _compile_with_re(pattern)[1]
                    if entry is not None:
                        _patterns[pattern] = marshal.dumps(entry)
            store("patterns", _ENGINE, _patterns)
    except BaseException:  # noqa: S110 - a Ctrl-C as the host exits: no traceback for a cache
        pass


def _can_write(path: str) -> bool:
    """Whether ``path`` could be written: its directory, or the nearest that exists."""
    directory = os.path.dirname(path)
    while directory and not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return os.access(directory or ".", os.W_OK)


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
