"""videotour/build.py: every slide of tour.txt still renders from the current files (and every live run is a
command the scripts accept), a run is recorded with its timing and replayed as a terminal, a quick build has
both streams and the duration of its narration, and the committed tour.mp4 is a 5-7 minute 1280x720 H.264 + AAC
file with at least a minute of live runs.

The builds need ffmpeg, espeak-ng and DejaVu fonts; without them those tests skip, except in CI (CI=true),
where .ci/run installs them: there they fail.
"""
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "videotour"))
import build  # noqa: E402

TOUR, VIDEO, LISTING = (ROOT / "videotour" / name for name in ("tour.txt", "tour.mp4", "build.log"))
# A run with a progress line redrawn in place (as run_log.Progress does on a terminal), then two lines.
PROGRESS = ["python", "-c", "import sys, time\nfor i in range(5):\n    print(f'step {i}/4', end='\\r', "
            "file=sys.stderr, flush=True)\n    time.sleep(0.25)\nprint()\nprint('done')"]


def require(*tools):
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not (build.FONT_DIR / "DejaVuSansMono.ttf").exists():
        missing.append("fonts-dejavu-core")
    if missing:
        reason = f"videotour needs {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build the tour: {reason}")
        pytest.skip(reason)


def probe(path):
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                             "stream=codec_type,codec_name,width,height:format=duration", "-of", "json", str(path)],
                            capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    return {s["codec_type"]: s for s in info["streams"]}, float(info["format"]["duration"])


def test_every_slide_renders_from_the_current_files_and_every_run_is_a_valid_command():
    require()
    slides = build.parse_tour(TOUR)
    assert len(slides) >= 10
    written = []  # the folders the live runs write to
    for directive, narration in slides:
        assert narration, directive
        kind, _, args = directive.partition(" ")
        if kind == "run":
            words = shlex.split(args.replace("{out}", "/scratch"))
            assert words[0] == "python" and (ROOT / words[1]).is_file(), directive
            importlib.import_module(Path(words[1]).stem).parse_args(words[2:])  # exits on a flag it lacks
            written.append(words[words.index("--out-dir") + 1])
        elif "{out}" in directive:  # shows what an earlier run wrote
            path = directive.split()[1].replace("{out}", "/scratch")
            assert any(path.startswith(folder + "/") for folder in written), directive
        else:
            assert build.render(directive).size == (1280, 720)
    assert len(written) >= 4


def test_a_run_is_recorded_with_its_timing_and_redraws_in_place():
    require()
    chunks, recorded = build.record(PROGRESS)
    times = [t for t, _ in chunks]
    assert len(chunks) >= 3 and times == sorted(times) and times[-1] >= 1.0  # output as it came, not at the end
    screens, speed = build.replay("$ demo", chunks, recorded, recorded + 3)
    assert speed == 1 and sum(shown for _, shown in screens) == pytest.approx(recorded + 3)
    assert screens[0][0][:2] == ["$ demo", ""]  # before the first output
    assert screens[-1][0][:4] == ["$ demo", "step 4/4", "done", ""]
    progress = [lines[1] for lines, _ in screens if lines[1].startswith("step")]
    assert len(set(progress)) >= 3 and progress == sorted(progress)  # one line, redrawn


def test_a_long_run_is_sped_up_and_its_end_stays_on_screen():
    require()
    chunks = [(1.0, b"first\r\n"), (10.0, b"second\r\n"), (19.0, b"last\r\n")]
    screens, speed = build.replay("$ long", chunks, 20.0, 6.0)
    assert speed == pytest.approx(20.0 / (6.0 - build.HOLD))
    assert screens[-1][0][:4] == ["$ long", "first", "second", "last"]
    assert screens[-1][1] >= build.HOLD - 1 / build.FPS
    assert sum(shown for _, shown in screens) == pytest.approx(6.0)


def test_a_failing_run_stops_the_build_with_its_last_line():
    require()
    with pytest.raises(build.TourError, match=r"exited with status 2: bad flag"):
        build.record(["python", "-c", "import sys; print('starting'); print('bad flag'); sys.exit(2)"])


def test_a_missing_code_symbol_is_named(tmp_path):
    require()
    with pytest.raises(build.TourError, match="no function or class 'no_such_function'"):
        build.render("code data.py no_such_function")


def test_quick_build_has_video_audio_and_the_narration_length(tmp_path):
    require("ffmpeg", "ffprobe", "espeak-ng")
    out = tmp_path / "quick.mp4"
    result = run_script("videotour/build.py", "--quick", "--out", out)
    assert result.returncode == 0, result.stderr
    expected = float(re.search(r"2 slides, ([\d.]+) s", result.stdout).group(1))
    streams, duration = probe(out)
    assert streams["video"]["codec_name"] == "h264" and (streams["video"]["width"], streams["video"]["height"]) == (
        1280, 720)
    assert streams["audio"]["codec_name"] == "aac"
    assert 2 < expected < 30 and duration == pytest.approx(expected, abs=0.25)


def test_a_tour_with_a_run_slide_builds_and_counts_it_live(tmp_path):
    require("ffmpeg", "ffprobe", "espeak-ng")
    tour = tmp_path / "tour.txt"
    tour.write_text("> title Test | a run\nOne sentence.\n> run python -c \"print('hello from a run')\"\n"
                    "A run that prints one line.\n")
    result = run_script("videotour/build.py", "--tour", tour, "--out", tmp_path / "t.mp4")
    assert result.returncode == 0, result.stderr
    total, live = map(float, re.search(r"2 slides, ([\d.]+) s, live runs ([\d.]+) s", result.stdout).groups())
    assert 0 < live < total and probe(tmp_path / "t.mp4")[1] == pytest.approx(total, abs=0.25)


def test_committed_tour_is_five_to_seven_minutes_with_both_streams_and_a_minute_live():
    require("ffprobe")
    streams, duration = probe(VIDEO)
    assert 300 <= duration <= 420
    total, live = map(float, re.search(r"slides, ([\d.]+) s, live runs ([\d.]+) s", LISTING.read_text()).groups())
    assert total == pytest.approx(duration, abs=0.5) and live >= 60
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 1280
    assert streams["audio"]["codec_name"] == "aac"
    assert VIDEO.stat().st_size < 20 * 2 ** 20
