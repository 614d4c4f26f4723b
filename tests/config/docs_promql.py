"""The PromQL a reader may paste from the docs: every ```promql block of docs/*.md and docs/labs/*.md.

The convention (docs/metrics.md, "PromQL in these docs"): one expression per fenced block with the
info string ``promql``. An HTML comment on the line right before the fence marks a block that is not
expected to return data on the live lab, with the reason:

    <!-- promql quiet: an alert condition, true only during an incident -->   may return nothing
    <!-- promql empty: sfu_bitrate_out_bits does not exist in this stack -->  returns nothing here, always
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([*(REPO / "docs").glob("*.md"), *(REPO / "docs" / "labs").glob("*.md")])
KINDS = ("data", "quiet", "empty")

_FENCE = re.compile(r"^([ \t]*)```promql[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_ANY_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)
_MARKER = re.compile(r"<!--\s*promql\s+(\w+)\s*:\s*(.*?)\s*-->\s*$")
_ANY_MARKER = re.compile(r"^\s*<!--\s*promql\b")
_INLINE = re.compile(r"(?<!`)`([^`]+?)`(?!`)")
_FUNCTIONS = ("rate|irate|increase|delta|idelta|deriv|sum|avg|min|max|count|topk|bottomk|quantile|"
              "histogram_quantile|label_replace|absent|[a-z]+_over_time")
# Inline code that is an expression, not a name: a call with arguments, or a range selector.
_INLINE_EXPRESSION = re.compile(rf"\b(?:{_FUNCTIONS})\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\(\s*[^)\s]"
                                r"|[\w:}]\[\d+[smhdw]\]")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    expr: str
    kind: str  # data, quiet or empty
    why: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def one_line(self) -> str:
        lines = [ln.strip() for ln in self.expr.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        return " ".join(lines)


def blocks(paths: list[Path] = DOCS) -> list[Block]:
    found = []
    for path in paths:
        text = path.read_text()
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = _MARKER.search(before)
            kind, why = (marker.group(1), marker.group(2)) if marker else ("data", "")
            found.append(Block(path, line, textwrap.dedent(match.group(2)).strip("\n"), kind, why))
    return found


def marker_problems(paths: list[Path] = DOCS) -> list[str]:
    """Markers not right before a promql fence, of an unknown kind, or without a reason."""
    problems = []
    for path in paths:
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if not _ANY_MARKER.search(line):
                continue
            where = f"{path.relative_to(REPO)}:{index + 1}"
            marker = _MARKER.search(line)
            if marker is None or marker.group(1) not in KINDS[1:]:
                problems.append(f"{where}: not <!-- promql quiet|empty: why -->")
            elif len(marker.group(2).split()) < 3:
                problems.append(f"{where}: say why in a few words")
            if index + 1 >= len(lines) or not lines[index + 1].lstrip().startswith("```promql"):
                problems.append(f"{where}: the marker must be the line right before a ```promql fence")
    return problems


def inline_expressions(paths: list[Path] = DOCS) -> list[str]:
    """Inline code spans outside fenced blocks that are PromQL expressions (they belong in a block)."""
    found = []
    for path in paths:
        text = _ANY_FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
        for match in _INLINE.finditer(text):
            span = " ".join(match.group(1).split())
            if "\n\n" not in match.group(1) and _INLINE_EXPRESSION.search(span):
                found.append(f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}: `{span}`")
    return found
