"""CPU-bound work split over the machine's cores with fork — adapter.

Reading and validating 10,000 manifests is pure-Python CPU work that threads cannot share (the
GIL), and it is most of what a large `plan` does. On Linux, `map_chunks` forks one child per extra
core: each child computes its slice and sends the pickled result back through a pipe while the
parent computes the first slice. The results come back in the order of the slices, so the output
never depends on how the work was split.

Children never return into the caller's code. They restore the default SIGINT/SIGTERM handlers
(so a Ctrl-C or SIGTERM cannot run the parent's cleanup, such as stopping local servers, a second
time) and leave with `os._exit` (so atexit handlers, buffered output and open database sockets stay
the parent's alone). If a child fails in any way — it dies, it is killed, its result does not
unpickle — the parent computes that slice itself: a fork can make a run faster, never different.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

WORKERS_ENV = "EXPCTL_WORKERS"


def worker_count() -> int:
    """How many processes may share CPU-bound work: the usable cores, or `EXPCTL_WORKERS`."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    if sys.platform != "linux":  # fork without exec is unsafe on macOS system libraries
        return 1
    return len(os.sched_getaffinity(0))


@dataclass
class _Child:
    pid: int
    fd: int | None
    reaped: bool = False

    def result(self) -> tuple[bool, Any]:
        """(True, result) if the child delivered one, else (False, None)."""
        chunks = []
        assert self.fd is not None
        with os.fdopen(self.fd, "rb") as pipe:
            self.fd = None
            while block := pipe.read(1 << 20):
                chunks.append(block)
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return False, None
        try:
            return True, pickle.loads(b"".join(chunks))  # noqa: S301 - our own forked child, through our own pipe
        except Exception:  # a truncated or corrupt result: compute the slice in the parent instead
            return False, None

    def kill(self) -> None:
        """Ends a child whose result was not collected (the parent was interrupted)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.reaped:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.reaped = True


def _run_child(func: Callable[[Sequence[T]], R], chunk: Sequence[T], read_fd: int, write_fd: int) -> None:
    code = 1
    try:
        os.close(read_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        data = pickle.dumps(func(chunk), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)  # never unwind into the caller, never run its atexit handlers


def _fork(func: Callable[[Sequence[T]], R], chunk: Sequence[T]) -> _Child | None:
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: the parent does the work
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:
        _run_child(func, chunk, read_fd, write_fd)
    os.close(write_fd)
    return _Child(pid, read_fd)


def split(items: Sequence[T], parts: int) -> list[Sequence[T]]:
    """`parts` contiguous slices of nearly equal length, in order."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(parts)]


def map_chunks(func: Callable[[Sequence[T]], R], items: Sequence[T], *, workers: int,
               min_chunk: int) -> list[R]:
    """`[func(slice) for slice in split(items, n)]`, the slices after the first computed in forked
    children; n is at most `workers` and leaves every slice at least `min_chunk` items."""
    parts = max(1, min(workers, len(items) // max(1, min_chunk)))
    if parts == 1:
        return [func(items)]
    chunks = split(items, parts)
    children = [_fork(func, chunk) for chunk in chunks[1:]]
    try:
        results = [func(chunks[0])]
        for child, chunk in zip(children, chunks[1:], strict=True):
            delivered, value = child.result() if child is not None else (False, None)
            results.append(cast(R, value) if delivered else func(chunk))
        return results
    finally:
        for child in children:
            if child is not None:
                child.kill()
