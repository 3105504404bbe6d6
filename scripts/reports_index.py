#!/usr/bin/env python3
"""reports/README.md and the README's results block, generated from the reports' JSON files.

    python scripts/reports_index.py          # rewrite both
    python scripts/reports_index.py --check  # exit 1 if either is stale (the test suite runs this)

A report is a Markdown file with a JSON file of the same stem beside it (or a sweep folder's
sweep.json, or the main job's results.json). Its line in the index is its title, the command that
made it, and the ``headline`` string its JSON carries — a sentence its own script computed from
the figures — so no figure here is typed by hand and none can drift from its report. A README block
between ``<!-- table: NAME -->`` and ``<!-- end of table -->`` is the compact table
(nlu.sweep.compact_table) of the sweep report reports/NAME/sweep.json, made the same way.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
README = ROOT / "README.md"
START, END = "<!-- results: made by scripts/reports_index.py -->", "<!-- end of results -->"
TABLE = re.compile(r"(<!-- table: ([\w-]+) -->\n).*?(<!-- end of table -->)", re.DOTALL)


def reports() -> list[tuple[Path, dict]]:
    """(Markdown report, its JSON) for every report under reports/, sorted by path."""
    found = []
    for markdown in sorted(REPORTS.rglob("*.md")):
        if markdown.name == "README.md":
            continue
        for data in (markdown.with_suffix(".json"), markdown.parent / "results.json"):
            if data.is_file():
                found.append((markdown, json.loads(data.read_text(encoding="utf-8"))))
                break
    return found


def title(markdown: Path) -> str:
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return markdown.stem


def report_name(markdown: Path) -> str:
    """A report's own name: its folder's (a sweep's sweep.md) or its file's (bench_bf16.md)."""
    return markdown.parent.name if markdown.parent != REPORTS else markdown.stem


def index_lines(relative_to: Path, studies_only: bool = False) -> list[str]:
    """One line per report; ``studies_only`` leaves out the parts of a study (``part_of`` in their
    JSON: the ablation's sweeps), which its own report links."""
    lines = []
    found = [(markdown, data) for markdown, data in reports() if not (studies_only and data.get("part_of"))]
    titles = Counter(title(markdown) for markdown, _ in found)
    for markdown, data in found:
        link = markdown.relative_to(relative_to) if markdown.is_relative_to(relative_to) else markdown.relative_to(ROOT)
        headline = data.get("headline")
        command = data.get("command")
        name = title(markdown) + (f" ({report_name(markdown)})" if titles[title(markdown)] > 1 else "")  # which of them
        lines.append(f"- [{name}]({link.as_posix()})" + (f": {headline}" if headline else "")
                     + (f" — `{command}`" if command else ""))
    return lines


def render_index() -> str:
    return "\n".join(["# Results", "",
                      "Every report in this folder, with the command that made it and the headline its own script "
                      "computed from its figures (`python scripts/reports_index.py` writes this page from the JSON "
                      "files). Host, threads and load are in each report.", "", *index_lines(REPORTS), ""])


def render_readme(text: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{README}: the results block markers are missing")
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    block = [line.replace("](", "](reports/", 1) for line in index_lines(REPORTS, studies_only=True)]
    return TABLE.sub(readme_table, before + START + "\n" + "\n".join(block) + "\n" + END + after)


def readme_table(match: re.Match) -> str:
    """The block's table, made from the sweep report it names (nlu.sweep imports torch: only here)."""
    from nlu.sweep import compact_table

    source = REPORTS / match[2] / "sweep.json"
    if not source.is_file():
        raise SystemExit(f"{README}: the table block names {source.relative_to(ROOT)}, which does not exist")
    return match[1] + "\n".join(compact_table(json.loads(source.read_text(encoding="utf-8")))) + "\n" + match[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = parser.parse_args(argv)
    wanted = {REPORTS / "README.md": render_index(), README: render_readme(README.read_text(encoding="utf-8"))}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python scripts/reports_index.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
