"""A tiny document model rendered to Markdown and to standalone HTML."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    #: Column indexes aligned right (numbers).
    right: set[int] = field(default_factory=set)


@dataclass
class Image:
    alt: str
    path: str


Block = Heading | Paragraph | Bullets | Table | Image


def _markdown_text(text: str) -> str:
    """One line of Markdown text whose HTML characters show as themselves."""
    return " ".join(html.escape(text, quote=False).splitlines())


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, block: Block) -> None:
        self.blocks.append(block)

    def markdown(self) -> str:
        """Markdown; ``<``, ``>`` and ``&`` escaped, so text from run names never renders as HTML."""
        m = _markdown_text
        out = [f"# {m(self.title)}", ""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += [f"{'#' * (b.level + 1)} {m(b.text)}", ""]
            elif isinstance(b, Paragraph):
                out += [m(b.text), ""]
            elif isinstance(b, Bullets):
                out += [f"- {m(item)}" for item in b.items] + [""]
            elif isinstance(b, Table):
                cell: Callable[[object], str] = lambda t: m(str(t)).replace("|", "\\|")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in b.headers) + " |")
                out.append("|" + "|".join("---:" if i in b.right else "---" for i in range(len(b.headers))) + "|")
                out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Image):
                out += [f"![{m(b.alt)}]({b.path})", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if isinstance(b, Heading):
                body.append(f"<h{b.level + 1}>{e(b.text)}</h{b.level + 1}>")
            elif isinstance(b, Paragraph):
                body.append(f"<p>{e(b.text)}</p>")
            elif isinstance(b, Bullets):
                body.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
                rows = "".join(
                    "<tr>"
                    + "".join(
                        f'<td class="num">{e(str(c))}</td>' if i in b.right else f"<td>{e(str(c))}</td>"
                        for i, c in enumerate(row)
                    )
                    + "</tr>"
                    for row in b.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(b, Image):
                body.append(f'<figure><img src="{e(b.path)}" alt="{e(b.alt)}"><figcaption>{e(b.alt)}</figcaption></figure>')
        style = (
            "body{font-family:system-ui,sans-serif;margin:2em;max-width:110em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
            "th,td{border:1px solid #ccc;padding:0.25em 0.5em;vertical-align:top}"
            "th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
            "img{max-width:100%}figure{margin:1em 0}figcaption{color:#666;font-size:0.9em}"
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{e(self.title)}</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )
