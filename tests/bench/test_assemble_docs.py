"""docs/benchmarks.md is the assembly of docs/benchmarks.d/ (so an edited section is never lost): its
contents list links every heading, every link inside it and inside docs/notes/ resolves, and every
dated note is linked from the section it came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.assemble_docs import DOCS, SECTIONS, anchors, assemble, main, notes, slug

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _text() -> str:
    return (DOCS / "benchmarks.md").read_text()


def _contents(text: str) -> str:
    return text.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]


def _check_links(path: Path) -> list[str]:
    """The links and images of `path` that point nowhere: a missing file, or an #anchor that is no
    heading of the file it names."""
    bad = []
    text = path.read_text()
    for target in LINK.findall(text) + IMAGE.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(target)
        elif anchor and anchor not in {a for _, _, a in anchors(dest.read_text())}:
            bad.append(target)
    return bad


def test_benchmarks_md_is_assembled_from_its_sections():
    assert main(["--check"]) == 0, "run python -m bench.assemble_docs after editing docs/benchmarks.d/ or docs/notes/"


def test_header_then_contents_then_current_results_then_earlier_runs():
    text = assemble()
    assert text.startswith("# Benchmarks\n")
    order = [text.index(s) for s in ("\n## Contents\n", "\n## Current results\n", "\n## Earlier runs (docs/notes/)\n")]
    assert order == sorted(order)
    assert text.count("\n## ") == 3, "sections sit one level below 'Current results'"
    assert "\n# " not in text.split("\n", 1)[1], "only the title is a level-1 heading"


def test_sections_keep_their_order():
    text = assemble()
    firsts = [text.index(f"\n### {title}") for title in (
        "Quality: generative models", "Quality: non-generative baselines", "Ablations", "oxygen.model",
        "Decoding", "Serving", "Semantic IDs", "Shop world (oxygen/world")]
    assert firsts == sorted(firsts)
    assert SECTIONS.index("training") == SECTIONS.index("model") + 1


def test_contents_link_every_heading_and_resolve():
    text = _text()
    listed = re.findall(r"\]\(#([^)]+)\)", _contents(text))
    headings = [(level, anchor) for level, title, anchor in anchors(text) if level >= 2 and title != "Contents"]
    assert listed == [anchor for _, anchor in headings], "the contents list every heading, in order"
    assert len(set(listed)) == len(listed)


def test_every_link_in_benchmarks_md_and_the_notes_resolves():
    for path in [DOCS / "benchmarks.md", *sorted((DOCS / "notes").glob("*.md"))]:
        assert _check_links(path) == [], f"{path.name}: broken links"


def test_every_note_is_linked_from_the_section_it_came_from():
    found = notes()
    assert found, "docs/notes/ holds the superseded runs"
    sections = {p.name: p.read_text() for p in (DOCS / "benchmarks.d").glob("*.md")}
    text = _text()
    for _, _, name in found:
        assert f"](notes/{name})" in text
        assert any(f"](notes/{name})" in body for body in sections.values()), \
            f"notes/{name}: link it from its section ('Earlier runs: ...')"


def test_every_note_links_back_to_benchmarks_md():
    for _, _, name in notes():
        assert "](../benchmarks.md#" in (DOCS / "notes" / name).read_text(), f"{name}: say what superseded it"


def test_slugs_follow_github():
    assert slug("Amazon'18 Office over three seeds (2026-12-01)") == "amazon18-office-over-three-seeds-2026-12-01"
    assert slug("Calibration (printed by `python -m apps.world`)") == "calibration-printed-by-python--m-appsworld"
    assert slug("**Bold** and [a link](x.md): ±1") == "bold-and-a-link-1"
    assert [a for _, _, a in anchors("# A\n## A\n```\n# not a heading\n```\n## A\n")] == ["a", "a-1", "a-2"]


def _tiny_docs(root: Path, names) -> None:
    (root / "benchmarks.d").mkdir(parents=True)
    (root / "benchmarks.d" / "header.md").write_text("# Benchmarks\n\nMachine.\n")
    for name in names:
        (root / "benchmarks.d" / f"{name}.md").write_text(f"# Section {name}\n\n## Part of {name}\n\n```\n# code\n```\n")


def test_the_training_section_is_optional_until_it_is_written(tmp_path):
    _tiny_docs(tmp_path, [n for n in SECTIONS if n != "training"])
    text = assemble(tmp_path)
    assert "### Section training" not in text and "(none yet)" in text
    assert "\n# code\n" in text, "fenced code keeps its lines"
    (tmp_path / "benchmarks.d" / "training.md").write_text("# Section training\n")
    text = assemble(tmp_path)
    assert text.index("### Section model") < text.index("### Section training") < text.index("### Section decoding")
    assert "  - [Section training](#section-training)" in text


def test_a_missing_required_section_or_a_misnamed_note_fails(tmp_path):
    _tiny_docs(tmp_path, [n for n in SECTIONS if n != "serving"])
    with pytest.raises(FileNotFoundError, match="serving"):
        assemble(tmp_path)
    (tmp_path / "benchmarks.d" / "serving.md").write_text("# Serving\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "old-run.md").write_text("# Old run\n")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        assemble(tmp_path)
    (tmp_path / "notes" / "old-run.md").rename(tmp_path / "notes" / "2026-11-23-old-run.md")
    assert "- 2026-11-23: [Old run](notes/2026-11-23-old-run.md)" in assemble(tmp_path)
