"""results.json (a list of row dicts) and a markdown table rendered from it, never by hand."""

from __future__ import annotations

import json
from pathlib import Path

from tfminv.io_utils import atomic_path, write_json


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 1000 else f"{v:.1f}"
    return "" if v is None else str(v)


def markdown_table(rows, columns=None) -> str:
    """A GitHub markdown table of `rows` (dicts); columns default to all keys, first-seen order."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows, out_dir, *, columns=None, title: str | None = None,
                  notes=(), extra: dict | None = None) -> tuple[Path, Path]:
    """Write out_dir/results.json (a JSON list of the rows) and out_dir/results.md (title,
    table, notes). extra (e.g. the command line and settings) goes to out_dir/run.json and as a
    list under the table.
    """
    out_dir = Path(out_dir)
    rows = [dict(r) for r in rows]
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    write_json(json_path, rows)
    if extra:
        write_json(out_dir / "run.json", extra)
    parts = []
    if title:
        parts.append(f"# {title}\n")
    parts.append(markdown_table(rows, columns))
    if extra:
        parts.append("\n" + "\n".join(f"- {k}: {_md_value(v)}" for k, v in extra.items())
                     + "\n")
    for note in notes:
        parts.append(f"\n{note}\n")
    with atomic_path(md_path, suffix=".md") as tmp:
        tmp.write_text("\n".join(parts))
    return json_path, md_path


#: a run.json value longer than this (as JSON) is only named in results.md, not printed there
MD_VALUE_CHARS = 400


def _md_value(value) -> str:
    """A run.json value as results.md lists it: its JSON in backticks, or for a long one (the
    targets' full records, say) what it is and where to read it, so the page stays readable."""
    text = json.dumps(value, default=str)
    if len(text) <= MD_VALUE_CHARS:
        return f"`{text}`"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in value)
        if len(keys) > MD_VALUE_CHARS:
            keys = keys[:MD_VALUE_CHARS] + ", ..."
        return f"{len(value)} entries ({keys}): see run.json"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} items: see run.json"
    return f"`{text[:MD_VALUE_CHARS]}...` (see run.json)"


def read_rows(path) -> list[dict]:
    """The rows of a results.json written by write_results."""
    return json.loads(Path(path).read_text())
