"""report.md stays the one printed page the course asks for, and links the file that holds everything else."""
import re

from conftest import ROOT

REPORT, EXPERIMENTS, README = (ROOT / name for name in ("report.md", "EXPERIMENTS.md", "README.md"))
MAX_WORDS, MAX_LINES = 650, 60  # one printed page, tables included


def test_report_fits_one_page():
    text = re.sub(r" ?<!--.*?-->", "", REPORT.read_text())  # comments are not printed
    words, lines = len(text.split()), len(text.splitlines())
    assert words <= MAX_WORDS and lines <= MAX_LINES, f"report.md: {words} words, {lines} lines"


def test_report_has_the_sections_the_course_asks_for_and_links_the_details():
    headings = [line for line in REPORT.read_text().splitlines() if line.startswith("## ")]
    assert headings == ["## Implementation", "## Results", "## How to run", "## Known bugs and difficulties"]
    assert "(EXPERIMENTS.md)" in REPORT.read_text() and "EXPERIMENTS.md" in README.read_text()
    assert "## Classification vs regression" in EXPERIMENTS.read_text()
