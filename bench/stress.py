"""Repeat the store's hardest cases with real processes and count duplicated or lost rows.

    python -m bench stress --pairs 20 --signals 10

1. `--pairs` times: two `raydist embed` commands over the same 600-input manifest into one new
   output, started together (both on one local Ray; `--commit-every 100`).
2. `--signals` times: one `raydist embed` of a 12,000-input manifest, SIGINT or SIGTERM (alternating)
   at a random moment 1-8 s after the first commit; then the printed command to continue.
Each ends with the count of inputs without exactly one row in clips/ and frames/, and the time
from each signal to the command's exit. Targets: 0 duplicated or lost; signal to exit <= 10 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

from bench.report import table


def manifest(files: list[str], path: str, n: int) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uri", "id"])
        for i in range(n):
            w.writerow([files[i % len(files)], f"x{i:05d}"])
    return path


def bad_rows(out: str, n: int) -> int:
    from raydist.io.store import read_table

    bad = 0
    for name in ("clips", "frames"):
        counts = Counter(read_table(out, name, columns=["id"]).column("id").to_pylist())
        bad += sum(1 for i in range(n) if counts.get(f"x{i:05d}", 0) != 1) + sum(
            1 for k in counts if not k.startswith("x")
        )
    return bad


def raydist(*args: str, address: str | None = None) -> subprocess.Popen:
    extra = ["--address", address] if address else []
    return subprocess.Popen(
        [sys.executable, "-m", "raydist.cli", *args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def main(argv: list[str] | None = None) -> dict:
    # the commands join this Ray with --address: both sides use its auth token, and Ray reads the
    # mode once, at import (the test session sets it the same way)
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from bench.corpora.tones import make_corpus, make_model
    from raydist.cluster.session import init_ray
    from raydist.io.runs import describe
    from raydist.io.store import RunStore

    ap = argparse.ArgumentParser(
        prog="python -m bench stress", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--signals", type=int, default=10)
    a = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="stress-runs-")
    files = make_corpus(os.path.join(tmp, "corpus"), 40, 4.0, 16000)
    model = make_model(os.path.join(tmp, "model"))
    init_ray(num_cpus=os.cpu_count())
    import ray

    address = ray.get_runtime_context().gcs_address
    pair_bad = []
    m = manifest(files, os.path.join(tmp, "pairs.csv"), 600)
    for r in range(a.pairs):
        out = os.path.join(tmp, f"pair-{r}")
        procs = [
            raydist("embed", m, "--model", model, "--out", out, "--commit-every", "100", address=address)
            for _ in range(2)
        ]
        for p in procs:
            text = p.communicate()[0]
            assert p.returncode == 0, text[-2000:]
        pair_bad.append(bad_rows(out, 600))
        dropped = sum(row["dropped"] for row in describe(RunStore(out)))
        print(f"pair {r}: {pair_bad[-1]} inputs without exactly one row; {dropped} dropped by the later commits")
    rng = random.Random(0)
    sig_bad, waits = [], []
    m = manifest(files, os.path.join(tmp, "signals.csv"), 12000)
    for r in range(a.signals):
        out = os.path.join(tmp, f"sig-{r}")
        sig = (signal.SIGINT, signal.SIGTERM)[r % 2]
        p = raydist("embed", m, "--model", model, "--out", out, "--commit-seconds", "2", address=address)
        while not RunStore(out).log():
            assert p.poll() is None
            time.sleep(0.2)
        time.sleep(rng.uniform(1, 8))
        if p.poll() is not None:
            print(f"signal {r}: the run finished before the signal; skipped")
            continue
        p.send_signal(sig)
        t0 = time.time()
        text = p.communicate()[0]
        waits.append(time.time() - t0)
        found = re.search(r"To continue: (.*)", text)
        if p.returncode == 0 and "raydist: embedded" in text:
            print(f"signal {r}: the run finished as the signal came (it is ignored once the work is done)")
            sig_bad.append(bad_rows(out, 12000))
            continue
        assert p.returncode == 128 + sig and found, (p.returncode, text[-2000:])
        committed = len(RunStore(out).done_ids())
        command = shlex.split(found.group(1))[1:]  # `raydist ...` as printed, run the same way
        again = subprocess.run([sys.executable, "-m", "raydist.cli", *command], capture_output=True, text=True)
        assert again.returncode == 0, again.stdout[-2000:]
        sig_bad.append(bad_rows(out, 12000))
        print(
            f"signal {r}: {sig.name} after {committed} committed, exit {waits[-1]:.1f} s later; "
            f"after the continue command {sig_bad[-1]} inputs without exactly one row"
        )
    result = {"pairs": a.pairs, "pair_bad_rows": pair_bad, "signals": a.signals, "signal_bad_rows": sig_bad}
    result["signal_to_exit_s"] = waits
    print(render(result))
    return result


def render(result: dict) -> str:
    pairs, sigs, waits = result["pair_bad_rows"], result["signal_bad_rows"], result["signal_to_exit_s"]
    rows = [["two commands started together on one output (600 inputs)", len(pairs), sum(pairs), ""]]
    if sigs:
        w = f"{statistics.mean(waits):.1f} s mean, {max(waits):.1f} s max" if waits else ""
        rows.append(
            ["SIGINT/SIGTERM mid-run, then the printed command to continue (12,000 inputs)", len(sigs), sum(sigs), w]
        )
    return table(["case", "runs", "inputs without exactly one row", "signal to exit"], rows)
