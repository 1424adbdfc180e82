"""Benchmark results on disk (bench/results/NAME.json) and the docs rendered from them.

A result file holds what the benchmark returned under "result", with the command that made it, the
date, the machine and the commit. `render_all` writes docs/benchmarks.md (every benchmark: what it
measures, how to run it, its latest tables) and every generated block of README.md and docs/*.md
(between `<!-- gen:KEY -->` and `<!-- /gen:KEY -->`: `headline`, the figures table, or
`headline:NAME` one benchmark's; `tables:NAME` its tables; `schema:TABLE`,
an output table's columns from raydist/io/schema.py); no figure in them is typed by hand.
"""

from __future__ import annotations

import datetime
import glob
import importlib
import inspect
import json
import os
import platform
import re
import subprocess
import textwrap

import numpy as np

from bench import BENCHMARKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
README = os.path.join(ROOT, "README.md")


def results_dir() -> str:
    return os.environ.get("BENCH_RESULTS", RESULTS)


def machine() -> str:
    """This machine in a few words: CPU model and count, memory, GPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpus = ""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
        gpus = (
            f", {len(out.splitlines())} GPU ({out.splitlines()[0].split(':', 1)[1].split('(')[0].strip()})"
            if out
            else ""
        )
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB{gpus}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [line for line in git("status", "--porcelain").splitlines() if "bench/results/" not in line]
    return sha + ("+changes" if dirty else "")


def save(name: str, command: str, result: dict, seconds: float) -> str:
    record = {
        "benchmark": name,
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "commit": commit(),
        "seconds": round(seconds, 1),
        "result": result,
    }
    os.makedirs(results_dir(), exist_ok=True)
    path = os.path.join(results_dir(), f"{name}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1, default=_jsonable)
        f.write("\n")
    return path


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON: {type(x).__name__}")


def load(name: str) -> dict | None:
    path = os.path.join(results_dir(), f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# -- formatting helpers the benchmarks' render functions share ------------------------------------


def mean_std(values, digits: int = 3) -> str:
    """'m ± s' over seeds or runs (population std), or the one value."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- rendering ------------------------------------------------------------------------------------


def _module(name: str):
    return importlib.import_module(f"bench.{BENCHMARKS[name][0]}")


def _section(name: str) -> str:
    module, record = _module(name), load(name)
    doc = inspect.getdoc(module) or ""
    out = [f"## {name}", "", doc, ""]
    if record is None:
        if getattr(module, "WRITES_RESULT", True):
            out += [f"No result recorded yet: run `python -m bench {name}`.", ""]
        else:
            out += [
                "A device tool: it writes its results under `$OUT`, not to bench/results; what it measured is in "
                "[experiments.md](experiments.md#compression).",
                "",
            ]
        return "\n".join(out)
    minutes = record["seconds"] / 60
    out += [
        f"Latest run: `{record['command']}` on {record['date']}, {record['machine']}, commit "
        f"`{record['commit']}`, {minutes:.0f} min.",
        "",
    ]
    if hasattr(module, "render"):
        out += [module.render(record["result"]).strip(), ""]
    return "\n".join(out)


def benchmarks_doc() -> str:
    head = textwrap.dedent(
        """\
        # Benchmarks

        <!-- Made by `python -m bench render` from bench/results/*.json: edit the benchmarks, not this file. -->

        Every figure on this page is rendered from a benchmark's own JSON output (`bench/results/`),
        with the command, date, machine and commit that made it. To reproduce one, run its command
        from a checkout with the test extras installed (`pip install -e '.[test,bench]'`; the
        corpora need `apt-get install espeak-ng fluidsynth fluid-soundfont-gm ffmpeg`), then
        `python -m bench render`. Learned models are always scored on clips they were not trained
        on, except where a section says otherwise; figures over seeds are mean ± standard deviation.
        How the settings behind these figures were chosen, and what else was tried, is in
        [experiments.md](experiments.md).

        """
    )
    rows = []
    for name, (_, what) in BENCHMARKS.items():
        record = load(name)
        module = _module(name)
        state = "device tool" if not getattr(module, "WRITES_RESULT", True) else "not yet run"
        rows.append([f"[{name}](#{name})", what, record["date"] if record else state])
    return (
        head
        + table(["benchmark", "what it measures", "latest run"], rows)
        + "\n\n"
        + "\n".join(_section(name) for name in BENCHMARKS).rstrip()
        + "\n"
    )


def headline_table(link_prefix: str, only: str | None = None) -> str:
    rows = []
    for name in [only] if only else BENCHMARKS:
        module, record = _module(name), load(name)
        if record is not None and hasattr(module, "headline"):
            for what, figure in module.headline(record["result"]):
                rows.append([what, figure, f"[{name}]({link_prefix}benchmarks.md#{name}), {record['date']}"])
    if not rows:
        return f"No figures recorded yet: run `python -m bench {only or 'NAME'}`."
    return table(["what", "figure (baseline)", "measured by"], rows)


def generated(key: str, path: str) -> str:
    """The text of the block `<!-- gen:KEY -->` in the Markdown file at `path`."""
    if key == "headline" or key.startswith("headline:"):
        prefix = "" if os.path.dirname(path) == os.path.dirname(DOC) else "docs/"
        return headline_table(prefix, key.split(":", 1)[1] if ":" in key else None)
    if key.startswith("schema:"):
        from raydist.io.schema import markdown

        return markdown(key.split(":", 1)[1])
    if key.startswith("tables:"):  # one benchmark's tables, as docs/benchmarks.md shows them
        name = key.split(":", 1)[1]
        record = load(name)
        return _module(name).render(record["result"]).strip() if record else f"Not run yet: `python -m bench {name}`."
    raise SystemExit(f"{path}: unknown generated block {key!r}")


BLOCK = re.compile(r"(<!-- gen:(\S+) -->\n)(.*?)(<!-- /gen:\2 -->)", re.S)


def with_blocks(text: str, path: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + generated(m.group(2), path) + "\n" + m.group(4), text)


def render_all(check: bool = False) -> list[str]:
    """Write (or with check, compare) docs/benchmarks.md and every generated block of README.md and
    docs/*.md; returns the paths that were (or, with check, are) stale."""
    pages = [README] + sorted(glob.glob(os.path.join(os.path.dirname(DOC), "*.md")))
    wanted = {DOC: benchmarks_doc()}
    for path in pages:
        if path != DOC:
            with open(path) as f:
                wanted[path] = with_blocks(f.read(), path)
    stale = []
    for path, text in wanted.items():
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(path)
            if not check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
    return stale
