"""SIGINT and SIGTERM for long commands: the first asks the work to stop after committing what is
finished; a second exits at once. Plain Python (no Ray): the runner, decompress and the trainer
use it, and the CLI turns `Interrupted` into its message and exit code (130, 143)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A command stopped on SIGINT or SIGTERM; its message says what was kept and what remains."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM


def name(signum: int) -> str:
    return signal.Signals(signum).name


@contextmanager
def on_signals(raise_first: bool = False) -> Iterator[list[int]]:
    """While active, the first SIGINT/SIGTERM is appended to the yielded list (or, with
    `raise_first`, raised as Interrupted where the main thread is) and announced on stderr; a
    second exits the process at once with 128 + signal. Outside the main thread it does nothing
    (Python only lets the main thread set handlers)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:
            print(f"\nraydist: {name(signum)} again: stopping now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        received.append(signum)
        print(
            f"\nraydist: {name(signum)}: keeping finished work and stopping (send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        if raise_first:
            raise Interrupted(signum, f"interrupted by {name(signum)}")

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_until_signal(work: Callable[[], None], stop: Callable[[], None] | None = None, wait_s: float = 30.0) -> int:
    """Run `work` in a daemon thread while the main thread waits for it or for SIGINT/SIGTERM
    (a main thread blocked inside Ray's iterators may never see a signal). Returns the signal
    that came first, or 0 when `work` finished; `work`'s exception is raised here.

    On a signal, `stop()` runs here (it keeps what is finished and asks `work` to end) and `work`
    gets up to `wait_s` to end before this returns: a thread still inside Ray when the command
    shuts Ray down can crash the process (seen once in CI: a SIGINT-ed `raydist embed` that had
    committed its work exited -11 instead of 130). A second signal still exits at once."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            failure.append(e)

    thread = threading.Thread(target=target, name="raydist-work", daemon=True)
    with on_signals() as received:
        thread.start()
        while thread.is_alive() and not received:
            thread.join(0.2)
        if received:
            try:
                if stop is not None:
                    stop()
            finally:  # a failing stop() (its last commit) still lets `work` end before Ray is shut down
                thread.join(wait_s)
            return received[0]
    if failure:
        raise failure[0]
    return 0
