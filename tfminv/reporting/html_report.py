"""A report as a short list of blocks, rendered to one self-contained HTML file and to markdown.

The HTML embeds every figure as a base64 PNG data URI and loads nothing from outside (no
scripts, fonts or style sheets), so the single file can be mailed, archived or opened offline.
The markdown version links the same PNG files by relative path, for reading on a code host.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tfminv.errors import ConfigError
from tfminv.io_utils import atomic_path

_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:2em auto;
max-width:1180px;padding:0 1.2em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;
padding-bottom:.2em}h3{font-size:1.05em}
.subtitle{color:#666;margin-top:0}
.table{overflow-x:auto;margin:.8em 0}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td{white-space:nowrap}th{background:#f3f3f3;vertical-align:bottom;max-width:9em}
td:first-child,th:first-child{text-align:left;font-family:monospace}
p.caption{color:#555;font-size:.9em;margin-top:-.4em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.6em;font-size:.85em;white-space:pre-wrap;overflow-wrap:anywhere}
code{background:#f3f3f3;padding:0 .2em}
.note{background:#fff8e1;border-left:4px solid #f0c040;padding:.5em .8em}
"""


@dataclass
class _Block:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def _fmt_cell(value, fmt: str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return format(value, fmt or ".4g")
    return str(value)


_INLINE_CODE = re.compile(r"`([^`]+)`")


def _inline_html(text: str) -> str:
    """Escape text; `code` spans become <code>."""
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        out.append(f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part))
    return "".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class Report:
    """Build a report block by block, then `write` it as HTML and/or markdown."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[_Block] = []

    # -- building -----------------------------------------------------------------------------
    def heading(self, text: str, level: int = 2) -> "Report":
        if level not in (2, 3):
            raise ConfigError(f"report heading level must be 2 or 3, got {level}")
        self.blocks.append(_Block("heading", {"text": text, "level": level}))
        return self

    def paragraph(self, text: str) -> "Report":
        """A paragraph of plain text; `backticks` mark code."""
        self.blocks.append(_Block("paragraph", {"text": text}))
        return self

    def note(self, text: str) -> "Report":
        """A highlighted paragraph (caveats the reader must not miss)."""
        self.blocks.append(_Block("note", {"text": text}))
        return self

    def bullets(self, items: Sequence[str]) -> "Report":
        self.blocks.append(_Block("bullets", {"items": list(items)}))
        return self

    def code(self, text: str) -> "Report":
        self.blocks.append(_Block("code", {"text": text}))
        return self

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
              formats: Sequence[str | None] | None = None) -> "Report":
        """A table; `formats` gives a format spec per column for floats (default '.4g')."""
        columns = list(columns)
        for r in rows:
            if len(r) != len(columns):
                raise ConfigError(f"report table {caption!r}: row {list(r)!r} has {len(r)} cells, "
                                  f"expected {len(columns)}")
        if formats is not None and len(formats) != len(columns):
            raise ConfigError(f"report table {caption!r}: {len(formats)} formats for {len(columns)} columns")
        fmts = list(formats) if formats is not None else [None] * len(columns)
        cells = [[_fmt_cell(v, f) for v, f in zip(r, fmts)] for r in rows]
        self.blocks.append(_Block("table", {"columns": columns, "cells": cells, "caption": caption}))
        return self

    def figure(self, png_path: str | os.PathLike, caption: str = "", alt: str = "") -> "Report":
        """A PNG figure; the file must exist when the report is written."""
        self.blocks.append(_Block("figure", {"path": Path(png_path), "caption": caption,
                                             "alt": alt or caption}))
        return self

    # -- rendering ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """One HTML document with every figure embedded as a data URI."""
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               '<meta name="viewport" content="width=device-width, initial-scale=1">',
               f"<title>{html.escape(self.title)}</title>", f"<style>{_CSS}</style>",
               "</head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        if self.subtitle:
            out.append(f'<p class="subtitle">{_inline_html(self.subtitle)}</p>')
        for b in self.blocks:
            d = b.data
            if b.kind == "heading":
                out.append(f"<h{d['level']}>{html.escape(d['text'])}</h{d['level']}>")
            elif b.kind == "paragraph":
                out.append(f"<p>{_inline_html(d['text'])}</p>")
            elif b.kind == "note":
                out.append(f'<p class="note">{_inline_html(d["text"])}</p>')
            elif b.kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in d["items"]) + "</ul>")
            elif b.kind == "code":
                out.append(f"<pre>{html.escape(d['text'])}</pre>")
            elif b.kind == "table":
                head = "".join(f"<th>{html.escape(c)}</th>" for c in d["columns"])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                               for row in d["cells"])
                out.append(f'<div class="table"><table><thead><tr>{head}</tr></thead>'
                           f"<tbody>{body}</tbody></table></div>")
                if d["caption"]:
                    out.append(f'<p class="caption">{_inline_html(d["caption"])}</p>')
            elif b.kind == "figure":
                uri = png_data_uri(d["path"])
                cap = f"<figcaption>{_inline_html(d['caption'])}</figcaption>" if d["caption"] else ""
                out.append(f'<figure><img src="{uri}" alt="{html.escape(d["alt"], quote=True)}">'
                           f"{cap}</figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def to_markdown(self, relative_to: str | os.PathLike | None = None) -> str:
        """Markdown; figures link their PNG by path relative to `relative_to` (the .md's folder)."""
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [self.subtitle, ""]
        for b in self.blocks:
            d = b.data
            if b.kind == "heading":
                out += ["#" * d["level"] + " " + d["text"], ""]
            elif b.kind == "paragraph":
                out += [d["text"], ""]
            elif b.kind == "note":
                out += ["> " + d["text"], ""]
            elif b.kind == "bullets":
                out += [f"- {i}" for i in d["items"]] + [""]
            elif b.kind == "code":
                out += ["```", d["text"], "```", ""]
            elif b.kind == "table":
                out.append("| " + " | ".join(_md_cell(c) for c in d["columns"]) + " |")
                out.append("|" + "|".join("---" for _ in d["columns"]) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in d["cells"]]
                out.append("")
                if d["caption"]:
                    out += [f"*{d['caption']}*", ""]
            elif b.kind == "figure":
                path = d["path"]
                if relative_to is not None:
                    path = Path(os.path.relpath(path.resolve(), Path(relative_to).resolve()))
                out += [f"![{d['alt']}]({path.as_posix()})", ""]
                if d["caption"]:
                    out += [f"*{d['caption']}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def write(self, html_path: str | os.PathLike | None = None,
              markdown_path: str | os.PathLike | None = None) -> None:
        """Write the HTML and/or markdown file atomically."""
        if html_path is not None:
            text = self.to_html()
            with atomic_path(html_path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        if markdown_path is not None:
            text = self.to_markdown(relative_to=Path(markdown_path).parent)
            with atomic_path(markdown_path) as tmp:
                tmp.write_text(text, encoding="utf-8")


def png_data_uri(path: str | os.PathLike) -> str:
    """`data:image/png;base64,...` for a PNG file (checked by its signature)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"report figure {path}: cannot read ({e.strerror})") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ConfigError(f"report figure {path}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?!data:|#)([^"'\s>]+)""", re.I)


def external_references(html_text: str) -> list[str]:
    """Every src/href target that is not an embedded data URI or an in-page anchor: a
    self-contained report has none."""
    refs = _EXTERNAL.findall(html_text)
    refs += re.findall(r"url\(\s*['\"]?(?!data:)([^)'\"]+)", html_text, re.I)
    refs += re.findall(r"@import\s+['\"]?([^'\";]+)", html_text, re.I)
    return refs
