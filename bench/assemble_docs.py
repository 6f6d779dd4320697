"""Assemble docs/benchmarks.md from its per-area sections in docs/benchmarks.d/ (edit those, then run
this; it is the only assembler): the header, a linked table of contents built from the headings,
"Current results" (every section in SECTIONS order, its headings pushed two levels down), then
"Earlier runs": one line per dated note docs/notes/YYYY-MM-DD-<topic>.md (runs a later run
superseded; each is also linked from the section it came from).

    python -m bench.assemble_docs            # rewrites docs/benchmarks.md
    python -m bench.assemble_docs --check    # exit 1 when docs/benchmarks.md is out of date

Result tables are written into the section files by hand: no result JSON is committed (runs/ is
ignored), so there is nothing for the assembler to rebuild a table from.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
# current results first: quality, ablations, then the speed and systems figures, then the data
SECTIONS = ("quality_generative", "quality_baselines", "instructions", "nearline", "ranking", "ab_test", "post_training", "ablations",
            "model", "training", "decoding", "serving", "gpu", "sids", "world")
OPTIONAL = frozenset({"training"})  # being written (bench/training.py); assembled once the file exists
CURRENT, CONTENTS, EARLIER = "Current results", "Contents", "Earlier runs (docs/notes/)"
NOTE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-[a-z0-9][a-z0-9-]*\.md$")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#* *$")


def _lines_outside_fences(text: str):
    """(index, line, in_fence) for every line; fenced code (``` or ~~~) is never a heading."""
    fence = None
    for i, line in enumerate(text.split("\n")):
        mark = re.match(r"^ {0,3}(```|~~~)", line)
        if mark and (fence is None or mark.group(1) == fence):
            fence = mark.group(1) if fence is None else None
            yield i, line, True
            continue
        yield i, line, fence is not None


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every ATX heading outside fenced code, in order."""
    out = []
    for _, line, fenced in _lines_outside_fences(text):
        m = None if fenced else HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def demote(text: str, by: int) -> str:
    """`text` with every heading outside fenced code `by` levels deeper."""
    lines = text.split("\n")
    for i, line, fenced in _lines_outside_fences(text):
        if not fenced and HEADING.match(line):
            lines[i] = "#" * by + line
    return "\n".join(lines)


def slug(title: str) -> str:
    """GitHub's anchor for a heading: its text (code spans, links and emphasis reduced to their text)
    lower-cased, characters other than letters, digits, '_', '-' and ' ' dropped, spaces -> '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", title)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|\*)", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> list[tuple[int, str, str]]:
    """(level, title, anchor) of every heading of `text`; repeated slugs get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = []
    for level, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append((level, title, base if n == 0 else f"{base}-{n}"))
    return out


def notes(root: Path = DOCS) -> list[tuple[str, str, str]]:
    """(date, title, file name) of every dated note in root/notes/, oldest first."""
    out = []
    for path in sorted((root / "notes").glob("*.md")):
        m = NOTE_NAME.match(path.name)
        if not m:
            raise ValueError(f"{path}: a note is named YYYY-MM-DD-<topic>.md (lower case, hyphens)")
        titles = headings(path.read_text())
        if not titles or titles[0][0] != 1:
            raise ValueError(f"{path} must open with a '# title' line")
        out.append((m.group(1), titles[0][1], path.name))
    return out


def sections(root: Path = DOCS) -> list[str]:
    """The names of SECTIONS whose file exists (an OPTIONAL one may still be missing)."""
    present = []
    for name in SECTIONS:
        if (root / "benchmarks.d" / f"{name}.md").exists():
            present.append(name)
        elif name not in OPTIONAL:
            raise FileNotFoundError(f"{root / 'benchmarks.d' / name}.md is missing; every name in SECTIONS "
                                    "needs its section file (or list it in OPTIONAL)")
    return present


def _contents(text: str) -> str:
    """The nested, linked list of the headings of `text` below its title, Contents itself left out."""
    rows = [f"{'  ' * (level - 2)}- [{re.sub(r'[][]', '', title)}](#{anchor})"
            for level, title, anchor in anchors(text) if level >= 2 and title != CONTENTS]
    return "\n".join(rows)


def assemble(root: Path = DOCS) -> str:
    """The text of benchmarks.md from root/benchmarks.d/{header, SECTIONS}.md and root/notes/."""
    header = (root / "benchmarks.d" / "header.md").read_text().strip("\n")
    parts = [demote((root / "benchmarks.d" / f"{name}.md").read_text().strip("\n"), 2) for name in sections(root)]
    earlier = "\n".join(f"- {'' if date in title else date + ': '}[{title}](notes/{name})"
                        for date, title, name in notes(root))
    body = (f"## {CURRENT}\n\n" + "\n\n\n".join(parts) + f"\n\n\n## {EARLIER}\n\n"
            + (earlier or "(none yet)"))
    contents = _contents(f"{header}\n\n## {CONTENTS}\n\n{body}\n")  # the list itself holds no heading
    return f"{header}\n\n## {CONTENTS}\n\n{contents}\n\n{body}\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) docs/benchmarks.md."""
    p = argparse.ArgumentParser(prog="python -m bench.assemble_docs", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that benchmarks.md is up to date")
    args = p.parse_args(argv)
    text, target = assemble(), DOCS / "benchmarks.md"
    missing = [n for n in SECTIONS if n not in sections()]
    if missing:
        print(f"(optional sections not written yet, left out: {', '.join(missing)})")
    if args.check:
        ok = target.exists() and target.read_text() == text
        print("docs/benchmarks.md is up to date" if ok else "docs/benchmarks.md is stale: run python -m bench.assemble_docs")
        return 0 if ok else 1
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
