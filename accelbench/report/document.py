"""The report's document: report.md and report.html built block by block, so they agree.

Every block a section writes goes to both forms: headings (level 2 ones make the contents),
paragraphs, bullet lists, tables (figures right-aligned in HTML), images (PNGs beside the
Markdown, embedded in the page) and whole fragments another module renders. The page's CSS is
here too; the HTML loads nothing from outside the file.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from accelbench.report.tables import markdown_table


def slug(text: str) -> str:
    """An anchor from a heading: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class Document:
    """report.md and report.html built block by block; PNGs go beside the Markdown."""

    files_dir: Path
    md: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    contents: list[tuple[str, str]] = field(default_factory=list)
    # Where the contents list goes, as (Markdown line, HTML block); None: right after the title.
    contents_at: tuple[int, int] | None = None

    def heading(self, level: int, text: str) -> None:
        anchor = slug(text)
        if any(a == anchor for a, _ in self.contents):
            anchor += f"-{len(self.contents)}"
        if level == 2:
            self.contents.append((anchor, text))
        self.md += ["#" * level + " " + text, ""]
        self.body.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')

    def para(self, text: str, css: str = "") -> None:
        self.md += [text, ""]
        cls = f' class="{css}"' if css else ""
        self.body.append(f"<p{cls}>{html.escape(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        if not items:
            return
        self.md += [f"- {item}" for item in items] + [""]
        self.body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, header: list[str], rows: list[list[str]], css: str = "") -> None:
        self.md += [markdown_table(header, rows), ""]
        self.body.append(_html_table(header, rows, css))

    def image(self, stem: str, png: bytes | None, alt: str) -> None:
        if not png:
            return
        self.files_dir.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) + ".png"
        (self.files_dir / name).write_bytes(png)
        self.md += [f"![{alt}]({self.files_dir.name}/{name})", ""]
        b64 = base64.b64encode(png).decode()
        self.body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">')

    def section_fragment(self, title: str, markdown: str, html_text: str) -> None:
        """A whole section another module renders in both forms, headings included."""
        anchor = slug(title)
        self.contents.append((anchor, title))
        if markdown:
            self.md += [markdown.rstrip(), ""]
        if html_text:
            self.body.append(f'<div id="{anchor}">{html_text}</div>')

    def contents_here(self) -> None:
        """Put the contents list (every level-2 heading, before and after) at this point."""
        self.contents_at = (len(self.md), len(self.body))

    def to_markdown(self, title: str) -> str:
        """report.md: the title, then the blocks, the contents list where it was placed."""
        at = self.contents_at[0] if self.contents_at else 0
        listing = ["Contents:", "", *(f"- {text}" for _, text in self.contents), ""]
        lines = [f"# {title}", "", *self.md[:at], *listing, *self.md[at:]]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self, title: str) -> str:
        """report.html: the same blocks in one self-contained page."""
        at = self.contents_at[1] if self.contents_at else 0
        items = "".join(
            f'<li><a href="#{anchor}">{html.escape(text)}</a></li>'
            for anchor, text in self.contents
        )
        nav = f"<nav><ul>{items}</ul></nav>"
        body = [f"<h1>{html.escape(title)}</h1>", *self.body[:at], nav, *self.body[at:]]
        return PAGE.format(title=html.escape(title), body="\n".join(body))


_NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?\s*(×|%|[a-zA-Z/]{1,4})?$")


def _html_cell(text: str) -> str:
    """A table cell; figures align right so their digits line up, words align left."""
    css = ' class="num"' if _NUMBER.match(text) else ""
    return f"<td{css}>{html.escape(text)}</td>"


def _html_table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #1d1d1f; line-height: 1.45; }}
h1 {{ font-size: 1.6em; border-bottom: 2px solid #333; padding-bottom: .3em; }}
h2 {{ font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
h3 {{ font-size: 1.1em; margin-top: 1.5em; }}
h4 {{ font-size: 1em; margin: 1em 0 .3em; }}
nav ul {{ columns: 3; list-style: square; padding-left: 1.2em; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
table.decision {{ font-size: 14px; }}
table.decision td:first-child {{ font-weight: 600; }}
img {{ max-width: 100%; display: block; margin: .6em 0; border: 1px solid #eee; }}
.legend {{ background: #fff8e1; border-left: 4px solid #f0b400; padding: .5em .8em; }}
.verdict {{ background: #eef5ff; border-left: 4px solid #3572c6; padding: .5em .8em; }}
</style></head>
<body>
{body}
</body></html>
"""
