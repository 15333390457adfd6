"""CPU-bound work split over the machine's cores with fork — adapter.

Reading and validating 10,000 manifests is pure-Python CPU work that threads cannot share (the
GIL), and it is most of what a large `plan` does. On Linux, `map_chunks` forks one child per extra
core and all processes, the parent included, take slices of the work from a shared queue until it
is empty: a process slowed down by a busy neighbour simply takes fewer slices. The queue is a pipe
holding one byte per slice (the way make's jobserver hands out job tokens). Each child sends every
result it computes, pickled, through its own pipe, which a thread of the parent drains and
unpickles as it arrives, so that the child never waits for the parent. Results are put back in
slice order: the output never depends on how the work was shared.

Children never return into the caller's code. They restore the default SIGINT/SIGTERM handlers
(so a Ctrl-C or SIGTERM cannot run the parent's cleanup, such as stopping local servers, a second
time) and leave with `os._exit` (so atexit handlers, buffered output and open database sockets stay
the parent's alone). If a child fails in any way — it dies, it is killed, a result does not
unpickle — the parent computes the slices it did not get: a fork can make a run faster, never
different.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS_ENV = "EXPCTL_WORKERS"
SLICES_PER_WORKER = 8  # enough to even out a slow process, few enough to keep per-slice costs small
_FRAME = struct.Struct("<BQ")  # slice index, pickled length


def worker_count() -> int:
    """How many processes may share CPU-bound work: the usable cores, or `EXPCTL_WORKERS`."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    if sys.platform != "linux":  # fork without exec is unsafe on macOS system libraries
        return 1
    return len(os.sched_getaffinity(0))


def split(items: Sequence[T], parts: int) -> list[Sequence[T]]:
    """`parts` contiguous slices of nearly equal length, in order."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(parts)]


def _take(queue: int) -> int | None:
    """The next slice index from the shared queue, or None once it is empty."""
    token = os.read(queue, 1)  # one-byte reads of a pipe are atomic between processes
    return token[0] if token else None


def _run_child(func: Callable[[Sequence[T]], R], slices: Sequence[Sequence[T]], queue: int, out: int) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with os.fdopen(out, "wb") as pipe:
            while (index := _take(queue)) is not None:
                data = pickle.dumps(func(slices[index]), protocol=pickle.HIGHEST_PROTOCOL)
                pipe.write(_FRAME.pack(index, len(data)))
                pipe.write(data)
                pipe.flush()
        code = 0
    finally:
        os._exit(code)  # never unwind into the caller, never run its atexit handlers


class _Child:
    """A forked worker, and a thread of the parent collecting what it sends."""

    def __init__(self, func: Callable[[Sequence[Any]], Any], slices: Sequence[Sequence[Any]], queue: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if self.pid == 0:
            os.close(read_fd)
            _run_child(func, slices, queue, write_fd)
        os.close(write_fd)
        self.found: dict[int, Any] = {}
        self._pipe = os.fdopen(read_fd, "rb")
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._done = False

    def start_collecting(self) -> None:
        self._reader.start()

    def _drain(self) -> None:
        """Unpickles results as they arrive: that work then counts in the sharing (the parent takes
        fewer slices) instead of being left for the end. A cut-off last result is left out."""
        with self._pipe:
            while len(header := self._pipe.read(_FRAME.size)) == _FRAME.size:
                index, length = _FRAME.unpack(header)
                data = self._pipe.read(length)
                if len(data) != length:
                    return
                # A result that does not unpickle is left out: the parent computes that slice itself.
                with contextlib.suppress(Exception):
                    self.found[index] = pickle.loads(data)  # noqa: S301 - our own child's data

    def results(self) -> dict[int, Any]:
        """Every complete result the child sent."""
        self._reader.join()
        os.waitpid(self.pid, 0)
        self._done = True
        return self.found

    def stop(self) -> None:
        """Ends a child whose results were not collected (the parent was interrupted)."""
        if self._done:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if self._reader.is_alive():
            self._reader.join()
        else:
            self._pipe.close()
        self._done = True


def _fork_workers(func: Callable[[Sequence[T]], R], slices: Sequence[Sequence[T]], count: int,
                  queue: int) -> list[_Child]:
    children = []
    for _ in range(count):
        try:
            children.append(_Child(func, slices, queue))
        except OSError:  # out of processes or memory: fewer helpers, same result
            break
    for child in children:  # threads only once every fork is done: a fork copies no running thread
        child.start_collecting()
    return children


def map_chunks(func: Callable[[Sequence[T]], R], items: Sequence[T], *, workers: int,
               min_chunk: int, meanwhile: Callable[[], object] | None = None) -> list[R]:
    """`[func(s) for s in slices]` for contiguous slices of `items`, shared among up to `workers`
    processes, each of which gets at least `min_chunk` items' worth of work.

    `meanwhile` is work of this process's own that the slices do not need (e.g. importing the
    modules that come next): it runs once the helpers are forked, and this process takes slices
    after it, so the helpers take more of them.
    """
    processes = max(1, min(workers, len(items) // max(1, min_chunk)))
    if processes == 1:
        if meanwhile is not None:
            meanwhile()
        return [func(items)]
    slices = split(items, min(255, len(items), processes * SLICES_PER_WORKER))
    queue, tokens = os.pipe()
    os.write(tokens, bytes(range(len(slices))))
    os.close(tokens)  # once the tokens are taken, every reader sees the end of the queue
    children: list[_Child] = []
    try:
        children = _fork_workers(func, slices, processes - 1, queue)
        if meanwhile is not None:
            meanwhile()
        mine: dict[int, R] = {}
        while (index := _take(queue)) is not None:
            mine[index] = func(slices[index])
        for child in children:
            mine.update(child.results())
        return [mine[i] if i in mine else func(s) for i, s in enumerate(slices)]
    finally:
        os.close(queue)
        for child in children:
            child.stop()


class Background:
    """`write()` run by a forked child while this process goes on; `finish()` waits for it.

    For output that may be produced while other work proceeds (the plan text an auto-approved
    apply prints while it writes to the database). The child writes straight to the file
    descriptors it inherited; the caller must not write to them until `finish()` returns, which
    runs `write()` in this process if the child did not complete it.
    """

    def __init__(self, write: Callable[[], None]) -> None:
        self._write = write
        self._pid: int | None = None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # a child must not write out what this process had buffered
        try:
            self._pid = os.fork()
        except OSError:
            write()  # no child: now, in this process
            return
        if self._pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                write()
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                code = 0
            finally:
                os._exit(code)

    def finish(self, redo: bool = True) -> None:
        """Waits for the child; with `redo`, runs `write()` here if the child failed."""
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        _, status = os.waitpid(pid, 0)
        if redo and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            self._write()
