"""Assemble docs/benchmarks.md from its per-area sections in docs/benchmarks.d/ (edit those, then run
this): the header, then each section with its headings pushed one level down.

    python -m bench.assemble_docs            # rewrites docs/benchmarks.md
    python -m bench.assemble_docs --check    # exit 1 when docs/benchmarks.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
SECTIONS = ("world", "sids", "quality_baselines", "quality_generative", "ablations", "model", "decoding", "serving")


def assemble(root: Path = DOCS) -> str:
    """The text of benchmarks.md from root/benchmarks.d/{header, SECTIONS}.md."""
    parts = []
    for name in SECTIONS:
        path = root / "benchmarks.d" / f"{name}.md"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; every name in SECTIONS needs its section file")
        parts.append(re.sub(r"^(#+) ", r"#\1 ", path.read_text(), flags=re.M).strip("\n"))
    header = (root / "benchmarks.d" / "header.md").read_text()
    return header + "\n\n" + "\n\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) docs/benchmarks.md."""
    p = argparse.ArgumentParser(prog="python -m bench.assemble_docs", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that benchmarks.md is up to date")
    args = p.parse_args(argv)
    text, target = assemble(), DOCS / "benchmarks.md"
    if args.check:
        ok = target.exists() and target.read_text() == text
        print("docs/benchmarks.md is up to date" if ok else "docs/benchmarks.md is stale: run python -m bench.assemble_docs")
        return 0 if ok else 1
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
