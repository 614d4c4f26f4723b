"""Every ```promql block of the docs parses, reads known metrics and is marked right; no expression hides inline.

The live half (each block run on a live stack) is in tests/labs/test_lab_checks_live.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from docs_promql import blocks, inline_expressions, marker_problems
from promql_names import metric_names, unknown_metrics

BLOCKS = blocks()
ARTICLE_ONLY = {"sfu_bitrate_in_bits", "sfu_bitrate_out_bits"}  # the article's gauges, absent here


def promtool_parse(exprs: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Parse each expression as a recording rule of its own group (promtool names the failing group)."""
    groups = [{"name": f"block {i}", "rules": [{"record": f"docs:block_{i}:parse", "expr": e}]}
              for i, e in enumerate(exprs)]
    path = workdir / "docs_blocks.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_the_docs_have_promql_blocks_in_metrics_runbooks_and_labs():
    where = {b.path.name for b in BLOCKS}
    assert {"metrics.md", "runbooks.md", "01-signaling-metrics.md", "06-alerts.md"} <= where
    assert len(BLOCKS) >= 20


def test_every_promql_block_is_one_expression_promtool_parses(tmp_path):
    run = promtool_parse([b.expr for b in BLOCKS], tmp_path)
    assert run.returncode == 0, "\n".join(f"block {i} = {b.where}" for i, b in enumerate(BLOCKS)) + run.stderr


def test_the_parse_check_refuses_two_expressions_in_one_block_and_a_broken_one(tmp_path):
    assert promtool_parse(["# two\nup\nsum(up)"], tmp_path).returncode != 0
    assert promtool_parse(["sum(rate(up[5m])"], tmp_path).returncode != 0
    assert promtool_parse(["# a comment line\nsum(rate(up[5m]))"], tmp_path).returncode == 0


def test_every_metric_a_block_reads_is_documented_recorded_or_the_articles_in_an_empty_block():
    for block in BLOCKS:
        unknown = unknown_metrics(metric_names(block.expr))
        if block.kind != "empty":
            assert not unknown, f"{block.where}: reads {sorted(unknown)}, not in docs/metrics.md nor recorded"
        else:
            assert unknown <= ARTICLE_ONLY, f"{block.where}: reads {sorted(unknown)}"


def test_every_marker_sits_right_before_a_block_with_a_kind_and_a_reason():
    assert marker_problems() == []


def test_no_promql_expression_is_left_in_inline_code():
    assert inline_expressions() == [], "put each in a ```promql block (docs/metrics.md, PromQL in these docs)"


def test_the_reader_finds_blocks_markers_and_inline_expressions_in_markdown(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("Text with `sfu_active_handles` and `rate(up[5m])` inline.\n\n"
                   "```promql\nsum(up)\n```\n\n"
                   "   <!-- promql quiet: only during an incident -->\n   ```promql\n   up == 0\n   ```\n\n"
                   "<!-- promql later: no -->\n\n```sh\nrate(x[5m])\n```\n")
    import docs_promql

    original = docs_promql.REPO
    docs_promql.REPO = tmp_path
    try:
        found = blocks([doc])
        assert [(b.line, b.expr, b.kind, b.why) for b in found] == [
            (3, "sum(up)", "data", ""), (8, "up == 0", "quiet", "only during an incident")]
        assert inline_expressions([doc]) == ["x.md:1: `rate(up[5m])`"]
        assert marker_problems([doc]) == ["x.md:12: not <!-- promql quiet|empty: why -->",
                                          "x.md:12: the marker must be the line right before a ```promql fence"]
    finally:
        docs_promql.REPO = original
