"""The markdown report that gathers a run's figures, tables and pictures."""

from __future__ import annotations

import json
import os


def write_report(path: str, sections: dict[str, dict]) -> str:
    """A markdown report gathering a run's figures, tables and pictures (paths relative to it)."""
    base = os.path.dirname(os.path.abspath(path))
    lines = ["# raydist run report", ""]
    for title, section in sections.items():
        lines += [
            f"## {title}",
            "",
            "```json",
            json.dumps({k: v for k, v in section.items() if k != "pictures"}, indent=2),
            "```",
            "",
        ]
        lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, base)})" for p in section.get("pictures", [])] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
