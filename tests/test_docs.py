"""The README is a front door: short, its commands run as written, and every headline figure it or report.md quotes
equals the figure's home (EXPERIMENTS.md's headline table, and the shipped model's test log)."""
import re
import shlex
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import test_colorize
import train_colorize
import train_mean
from conftest import DATA_DIR, HANG_GUARD_S, ROOT

README, REPORT, EXPERIMENTS = (ROOT / name for name in ("README.md", "report.md", "EXPERIMENTS.md"))
PROSE = [README, REPORT, EXPERIMENTS, *sorted((ROOT / "docs").glob("*.md")), ROOT / "videotour" / "tour.txt"]
PARSERS = {"train_colorize.py": train_colorize.parse_args, "test_colorize.py": test_colorize.parse_args,
           "train_mean.py": train_mean.parse_args}


def headline_figures():
    """EXPERIMENTS.md's "Headline figures" table: {key: figure text}."""
    text = EXPERIMENTS.read_text()
    table = text[text.index("## Headline figures"):].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+?) \|", table, re.M))


def shipped_test_mse():
    log = (ROOT / "outputs" / "test_colorize.log").read_text()
    return re.search(r"^test: 75 images, .* mean ([\d.]+) ", log, re.M).group(1)


def test_readme_is_one_screen_deep_and_links_its_pages():
    text = README.read_text()
    assert len(text.encode()) <= 12 * 1024, f"README.md is {len(text.encode())} bytes"
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", text):
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"


def test_no_diary_wording():
    for path in PROSE:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(r"\bsessions?\b", line, re.I), f"{path.name}:{number}: {line.strip()}"


def quoted_figures(text):
    """{key: figure} of a page's headline figures: a table row whose first cell, or a number in prose followed by
    its unit, carries the key as a markdown comment."""
    quoted = dict(re.findall(r"^\|.*<!-- ([a-z0-9-]+) -->.*?\| \**([\d.]+(?: ± [\d.]+)?)\** \|", text, re.M))
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    quoted.update((key, figure) for figure, key in  # in prose: the figure, a unit, the key
                  re.findall(r"\**(\d[\d.]*(?: ± [\d.]+)?)\**[^|<\d\n]{0,12}<!-- ([a-z0-9-]+) -->", prose))
    return quoted


@pytest.mark.parametrize("quoting", [README, REPORT, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda path: path.name)
def test_quoted_headline_figures_equal_their_home(quoting):
    """Each headline figure that README, report or a docs page quotes is quoted from EXPERIMENTS.md, the shipped
    model's is the figure its committed test log prints, and the outside photos' those of choose_fade.py's log."""
    home = headline_figures()
    assert {"default-image", "default-newfaces", "shipped-test"} <= home.keys()
    assert home["shipped-test"] == shipped_test_mse()
    mean_row = re.search(r"^\| mean \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                         (ROOT / "outputs" / "choose_fade.log").read_text(), re.M).groups()
    assert (home["outside-none"], home["outside-unfaded"], home["outside-default"]) == mean_row
    quoted = quoted_figures(quoting.read_text())
    if quoting in (README, REPORT):
        assert {"default-image", "default-newfaces"} <= quoted.keys(), f"{quoting.name} quotes no headline row"
    for key, figure in quoted.items():
        assert figure == home[key], f"{quoting.name} quotes {key} as {figure}, EXPERIMENTS.md has {home[key]}"


def readme_commands():
    """(script, its arguments) of every `python SCRIPT.py ...` line in the README's code blocks."""
    commands = []
    for block in re.findall(r"^```\n(.*?)^```", README.read_text(), re.M | re.S):
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                if re.match(r"\s*(\S*/)?python3? \S+\.py", part):
                    words = shlex.split(part)
                    commands.append((words[1], words[2:]))
    return commands


def test_every_readme_command_names_a_script_and_flags_it_accepts():
    commands = readme_commands()
    assert ("train_colorize.py", []) in commands and ("test_colorize.py", []) in commands
    for script, args in commands:
        assert (ROOT / script).is_file(), script
        PARSERS[script](args)  # argparse exits (failing the test) on a flag the script does not have
    for script in re.findall(r"sbatch .*?(slurm/\S+\.sbatch)", README.read_text()):
        assert (ROOT / script).is_file(), script


def test_the_readme_photo_command_runs_as_written_and_gives_the_committed_picture(tmp_path):
    """The quick README command, run as written in a copy of the project (beside a `shared` that holds the faces,
    as a fresh clone finds them), writes the PNG the README shows."""
    (script, args), = [command for command in readme_commands() if "examples/" in command[1]]
    project = tmp_path / "project"
    project.mkdir()
    for path in [*ROOT.glob("*.py"), ROOT / "examples", ROOT / "identities", ROOT / "outputs" / "colorizer.pt"]:
        target = project / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, target)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "face_images").symlink_to(DATA_DIR.resolve())
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=project,
                            timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr
    out_dir = project / args[args.index("--out-dir") + 1]
    for committed in (ROOT / "outputs" / "examples").glob("*.png"):
        made, shown = cv2.imread(str(out_dir / committed.name)), cv2.imread(str(committed))
        assert made.shape == shown.shape
        assert np.abs(made.astype(int) - shown).mean() < 1.0, committed.name  # float rounding differs by machine
