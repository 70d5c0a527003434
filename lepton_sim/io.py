"""Atomic file writes: a crash mid-write never leaves a truncated report, config or model behind, and a save
that has begun finishes before a Ctrl-C or SIGTERM takes effect (:func:`uninterrupted`)."""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _umask_now() -> int:
    """The process umask, changed for a moment (os.umask has no read-only form); used only at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_now()


def current_umask() -> int:
    """The umask, read without changing it where Linux shows it (another thread may be creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets the permissions of an ordinary new file (``0o666`` less the umask), not mkstemp's private
    0600, so a shared group folder or a TensorBoard server running as another user can read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one received.

    A save of several files (model, normalisation statistics, replay buffer) is then never cut in half by a
    second Ctrl-C. Nested blocks hold until the outermost ends; outside the main thread (where Python cannot
    set handlers) this does nothing."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:  # an outer block already holds the signals
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    received: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in _DEFERRED_SIGNALS}
    previous = {sig: handler for sig, handler in previous.items() if handler is not None}  # None: set in C
    for sig in previous:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])  # the handler in place before acts now (KeyboardInterrupt, ...)


_depth = 0  # nesting of uninterrupted() blocks in the main thread


def write_text_atomic(path: str | Path, text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return write_atomic(path, write)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Strict JSON: NaN (a metric that did not apply) is written as null."""
    return write_text_atomic(path, json.dumps(_no_nan(data), indent=2, default=_jsonable, allow_nan=False) + "\n")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
