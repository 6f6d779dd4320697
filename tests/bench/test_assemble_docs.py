"""docs/benchmarks.md is the assembly of docs/benchmarks.d/ (so an edited section is never lost)."""

from __future__ import annotations

from bench.assemble_docs import assemble, main


def test_benchmarks_md_is_assembled_from_its_sections():
    assert main(["--check"]) == 0, "run python -m bench.assemble_docs after editing docs/benchmarks.d/"


def test_sections_keep_their_order_and_headings_go_one_level_down():
    text = assemble()
    assert text.index("## Shop world") < text.index("## Ablations") < text.index("## Serving")
    assert "\n# Ablations" not in text
