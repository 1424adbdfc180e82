"""What a user sees: raydist's own lines on the console, everything else (Ray's logs, library
warnings, tracebacks of Ray's threads) in a log file that the first line names.

`quiet()` replaces file descriptors 1 and 2 of the CLI process with pipes; a thread per pipe
copies every line to the log file and passes on only what is ours: lines that do not look like a
log record, a warning or a traceback, and lines that Ray forwards from our workers (`(RayTrainWorker
pid=1) raydist: epoch ...`, shown without the prefix). Native code writing to fd 2 (Ray's core
worker) is caught too. Progress lines go straight to the terminal (`progress`): one line that
updates in place on a terminal, a plain line every 10 s otherwise. `--verbose` shows everything.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import re
import sys
import threading
import time
from typing import TextIO

# a line Ray forwards: "(RayTrainWorker pid=12) ...", "(raylet) ...", "(gcs_server, ip=10.0.0.2) ...",
# possibly after a progress bar's cursor-up and colour codes
RAY_PREFIX = re.compile(
    r"^(?:\x1b\[[0-9;]*[A-Za-z])*\((?P<who>[^\n]*?pid=\d+(?:, ip=[\w.:]+)?|autoscaler[^)]*|[A-Za-z_][\w.\-]*(?:, ip=[\w.:]+)?)\)"
    r"(?:\x1b\[[0-9;]*m)*\s"
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOG_RECORD = re.compile(
    r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b"  # Python logging
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ [DIWEF] \d+ \d+\]"  # Ray's C++ log
    r"|(DEBUG|INFO|WARNING|ERROR|CRITICAL) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ "  # Ray Serve's log
    r"|[DIWEF]\d{4} \d\d:\d\d:\d\d"  # glog
    r"|.*\b\w*Warning: "  # warnings.warn
    r"|\s+warnings\.warn\("
    r"|\*\*\* SIG|PC: @|\s+@ +0x)"  # native stack traces
)

_terminal: TextIO | None = None  # the real console, once quiet() runs
_log: TextIO | None = None
_log_path: str | None = None


def log_path() -> str | None:
    return _log_path


def quiet(log_dir: str, command: str, verbose: bool = False) -> str:
    """Route this process's stdout and stderr through the filter; returns the log file's path."""
    global _terminal, _log, _log_path
    os.makedirs(log_dir, exist_ok=True)
    _log_path = os.path.join(log_dir, f"{time.strftime('%Y%m%d-%H%M%S')}-{command}-{os.getpid()}.log")
    _log = log = open(_log_path, "a", buffering=1, errors="replace")
    faulthandler.enable(file=log, all_threads=True)  # a crash leaves every thread's Python stack in the log
    sys.stdout.flush()
    sys.stderr.flush()
    outs, pumps = {}, []
    for fd in (1, 2):
        outs[fd] = os.fdopen(os.dup(fd), "w", buffering=1, errors="replace")
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        pumps.append(threading.Thread(target=_pump, args=(r, outs[fd], log, verbose), daemon=True))
        pumps[-1].start()
    _terminal = outs[2]
    _pumps.extend(pumps)
    atexit.register(settle)
    return _log_path


_pumps: list[threading.Thread] = []


def end_now(code: int) -> None:
    """Pass on what is still in the pipes and exit at once with `code`, skipping interpreter
    teardown (an abandoned pipeline's thread inside Ray can crash it and change the exit code).
    Only for the `raydist` command (quiet() ran); elsewhere a plain SystemExit."""
    if _log is None:
        raise SystemExit(code)
    settle()
    os._exit(code)


def settle() -> None:
    """Pass on what is still in the pipes (once); from here on what this process prints goes to
    the log only (for what runs after the command's last line: Ray's shutdown)."""
    _drain(_pumps)
    _pumps.clear()


def _drain(pumps: list[threading.Thread]) -> None:
    """At exit: end the pipes and let the pumps pass on what is still in them."""
    if not pumps:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in (1, 2):
        os.dup2(_log.fileno(), fd)  # the pipes' last write ends close: the pumps read to the end
    for t in pumps:
        t.join(timeout=2)


def say(line: str) -> None:
    """One line on the console, now (not through the pipes: it is seen even if the process ends
    at once)."""
    out = _terminal or sys.stderr
    out.write((line if out.isatty() else ANSI.sub("", line)) + "\n")  # colours on a terminal only
    out.flush()


def _pump(r: int, out: TextIO, log: TextIO, verbose: bool) -> None:
    in_traceback = False
    with os.fdopen(r, "r", errors="replace") as lines:
        for line in lines:
            log.write(line)
            if verbose:
                out.write(line)
                continue
            shown, in_traceback = keep(line, in_traceback)
            if shown is not None:
                out.write(shown)
            out.flush()


def keep(line: str, in_traceback: bool = False) -> tuple[str | None, bool]:
    """(the line as shown, or None to hide it; whether a traceback continues after it)."""
    plain = ANSI.sub("", line)
    if not plain.strip():  # blank, or only cursor moves and clearing (a library's progress bar)
        return None, in_traceback
    m = RAY_PREFIX.match(line)
    if m:  # forwarded by Ray from a worker: only our own lines
        rest = line[m.end() :]
        return (rest if ANSI.sub("", rest).startswith("raydist") else None), False
    if plain.startswith("Traceback (most recent call last)"):  # (boxed panels are typer's help and usage errors: ours)
        return None, True
    if in_traceback:  # indented frames, chained-exception headers, blank lines; the exception line ends it
        cont = not plain.strip() or plain[:1].isspace() or plain.startswith(("During", "The above"))
        return None, cont
    if plain.strip() and LOG_RECORD.match(plain):
        return None, False
    return line, False


_last_plain = 0.0  # when progress() last printed a plain line (not on a terminal)


def progress(line: str, final: bool = False) -> None:
    """A progress line: rewritten in place on a terminal; on a pipe or file, one line every 10 s
    (and the final one)."""
    global _last_plain
    out = _terminal or sys.stderr
    tty = out.isatty()
    if tty:
        out.write("\r\x1b[K" + line + ("\n" if final else ""))
        out.flush()
        return
    now = time.time()
    if final or now - _last_plain >= 10:
        _last_plain = now
        out.write(line + "\n")
        out.flush()
