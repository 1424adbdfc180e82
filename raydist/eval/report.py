"""The report that gathers a run's figures, tables and pictures: markdown (report.md) and the same
as an HTML page beside it (report.html, pictures inline) that opens in a browser."""

from __future__ import annotations

import html
import json
import os
from typing import Any

Table = tuple[list[str], list[list[str]]]  # header, rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(", ", ": "))[:120]
    return str(v)


def tables(section: dict[str, Any]) -> list[tuple[str, Table]]:
    """A section's values as tables: its scalars in one (name | value); its flat dicts with the
    same keys (e.g. one per model) in one with a row each; each dict of dicts (e.g. per
    tolerance) in its own."""
    out: list[tuple[str, Table]] = []
    scalars = [[k, _fmt(v)] for k, v in section.items() if not isinstance(v, dict) and k != "pictures"]
    if scalars:
        out.append(("", (["", "value"], scalars)))
    flat = {
        k: v for k, v in section.items() if isinstance(v, dict) and not any(isinstance(x, dict) for x in v.values())
    }
    nested = {k: v for k, v in section.items() if isinstance(v, dict) and k not in flat}
    by_keys: dict[tuple, dict[str, Any]] = {}  # flat dicts with the same keys share a table
    for k, v in flat.items():
        by_keys.setdefault(tuple(v), {})[k] = v
    for title, group in [("", g) for g in by_keys.values()] + [(k, v) for k, v in nested.items()]:
        rows_of = {name: (x if isinstance(x, dict) else {"value": x}) for name, x in group.items()}
        if not rows_of:
            continue
        cols = list(dict.fromkeys(c for x in rows_of.values() for c in x))
        rows = [[name, *(_fmt(x.get(c, "")) for c in cols)] for name, x in rows_of.items()]
        out.append((title, (["", *cols], rows)))
    return out


def _markdown(title: str, t: Table) -> list[str]:
    header, rows = t
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _html(title: str, t: Table) -> str:
    header, rows = t
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{caption}<tr>{head}</tr>{body}</table>"


def write_report(path: str, sections: dict[str, dict], header: dict[str, Any] | None = None) -> str:
    """Write `path` (markdown) and the HTML page beside it; `header` (the run's settings and
    versions) comes first. Pictures are linked by paths relative to the report."""
    base = os.path.dirname(os.path.abspath(path))
    md, page = ["# raydist run report", ""], ["<h1>raydist run report</h1>"]
    ordered = ({"run": header} if header else {}) | sections
    for title, section in ordered.items():
        md += [f"## {title}", ""]
        page.append(f"<h2>{html.escape(title)}</h2>")
        for name, t in tables(section):
            md += _markdown(name, t)
            page.append(_html(name, t))
        for p in section.get("pictures", []):
            rel = os.path.relpath(p, base)
            md += [f"![{os.path.basename(p)}]({rel})", ""]
            page.append(f'<figure><img src="{html.escape(rel)}" style="max-width:100%"></figure>')
    with open(path, "w") as f:
        f.write("\n".join(md))
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}caption{font-weight:bold;text-align:left}"
    )
    with open(os.path.splitext(path)[0] + ".html", "w") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>raydist report</title><style>{style}</style>")
        f.write("\n".join(page))
    return path
