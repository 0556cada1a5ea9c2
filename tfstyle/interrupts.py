"""Ctrl-C: ``Interrupted``, and long calls run in a worker thread so that Ctrl-C lands at once.

A graph call (or a gRPC request, or a Beam pipeline) holds the main thread until it returns, and
Python delivers ``KeyboardInterrupt`` only between bytecodes of the main thread. ``run`` calls
``fn`` in a daemon thread and waits in short slices, so the main thread takes Ctrl-C within
about 0.1 s; the abandoned call finishes in the background, and ``busy`` tells the CLI not to
wait for it at exit. No TensorFlow here: the client and batch use it too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable

#: Seconds between checks for Ctrl-C while a worker runs.
SLICE_SECONDS = 0.1

_workers: set[threading.Thread] = set()  # started by ``run``, perhaps abandoned
_workers_lock = threading.Lock()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: ``image`` is the result after ``step`` of ``iterations``."""

    def __init__(self, image, step: int, iterations: int, terminated: bool = False):
        super().__init__(f"interrupted after step {step} of {iterations}")
        self.image, self.step, self.iterations = image, step, iterations
        #: Stopped by SIGTERM (``Terminated``, under ``sigterm_as_interrupt``), not Ctrl-C.
        self.terminated = terminated


def run(
    fn: Callable,
    *args,
    notice: Callable[[], None] | None = None,
    poll: Callable[[], None] | None = None,
    **kwargs,
):
    """``fn(*args, **kwargs)`` in a worker thread; its value, or its exception re-raised.

    Args:
        notice: None: Ctrl-C raises ``KeyboardInterrupt`` at once (the call is abandoned).
            Otherwise the first Ctrl-C calls ``notice()`` and the call is waited for; a second
            one raises at once, as SIGTERM (``Terminated``) always does.
        poll: called in the waiting thread every ``SLICE_SECONDS`` (e.g. to move a progress
            bar), never from the worker.
    """
    out: dict = {}
    done = threading.Event()

    def work():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as err:  # handed to the caller
            out["error"] = err
        finally:
            done.set()
            with _workers_lock:
                _workers.discard(threading.current_thread())

    worker = threading.Thread(target=work, name="tfstyle-worker", daemon=True)
    with _workers_lock:
        _workers.add(worker)
    worker.start()
    asked = False
    # An Event, not Thread.join: on Python 3.11 a KeyboardInterrupt inside join() marks a
    # running thread as stopped, so waiting on after a first Ctrl-C would end at once.
    while not done.is_set():
        try:
            done.wait(SLICE_SECONDS)
            if poll is not None and not done.is_set():
                poll()
        except KeyboardInterrupt as stop:  # SIGTERM (a scheduler's grace is short): at once
            if notice is None or asked or isinstance(stop, Terminated):
                raise
            asked = True
            notice()
    if "error" in out:
        raise out["error"]
    return out["value"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be (``sigterm_as_interrupt``)."""


def _terminate(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises ``Terminated`` in the main thread for the block, so that it stops the
    work the same clean way as Ctrl-C (elsewhere than the main thread: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:  # None: a handler not set from Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def stops_deferred():
    """Hold Ctrl-C and SIGTERM back until the end of the block, then raise ``KeyboardInterrupt``
    (or ``Terminated``) if one came: for imports of native libraries, which an exception raised
    half-way through leaves broken (importing TensorFlow, it gave a ``SystemError`` that was
    swallowed and the run went on, or a segmentation fault), and so that a SIGTERM at start-up
    is reported like one later. In a thread other than the main one: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: came.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(signum) is not signal.SIG_IGN  # ignored by the parent: stays so
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():  # None: not set from Python, the default
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if signal.SIGTERM in came:
        raise Terminated
    if came:
        raise KeyboardInterrupt


def busy() -> bool:
    """True while a call that ``run`` started (and perhaps abandoned) is still running."""
    with _workers_lock:
        return any(w.is_alive() for w in _workers)


@contextlib.contextmanager
def further_ctrl_c_ignored():
    """Ignore SIGINT for the block (in the main thread; elsewhere none arrives), so that a
    second press cannot lose the image being saved."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
