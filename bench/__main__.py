"""python -m bench [NAME [OPTIONS] | render [--check]]: run one benchmark, or render the docs."""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import time

from bench import BENCHMARKS
from bench.report import ROOT, render_all, save


def usage() -> str:
    lines = ["usage: python -m bench NAME [OPTIONS]   (python -m bench NAME --help for its options)", ""]
    lines += [f"  {name:10s} {what}" for name, (_, what) in BENCHMARKS.items()]
    lines += [
        "",
        "  render     docs/benchmarks.md and the generated blocks of README.md and docs/ (--check: compare only)",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "render":
        check = "--check" in rest
        stale = render_all(check=check)
        for path in stale:
            rel = os.path.relpath(path, ROOT)
            print(f"{rel} is stale: run `python -m bench render`" if check else f"wrote {rel}", file=sys.stderr)
        return 1 if stale and check else 0
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{BENCHMARKS[name][0]}")
    start = time.time()
    result = module.main(rest)
    if result is not None:
        command = shlex.join(["python", "-m", "bench", name, *rest])
        path = save(name, command, result, time.time() - start)
        print(f"wrote {os.path.relpath(path, ROOT)}; `python -m bench render` puts it in docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
