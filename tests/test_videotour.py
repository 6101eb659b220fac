"""videotour/build.py: every slide of tour.txt still renders from the current files, a quick build has both
streams and the duration of its narration, and the committed tour.mp4 is a 5-7 minute 1280x720 H.264 + AAC file.

The builds need ffmpeg, espeak-ng and DejaVu fonts; without them those tests skip, except in CI (CI=true),
where .ci/run installs them: there they fail.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "videotour"))
import build  # noqa: E402

TOUR, VIDEO = ROOT / "videotour" / "tour.txt", ROOT / "videotour" / "tour.mp4"


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


def test_every_slide_renders_from_the_current_files():
    require()
    slides = build.parse_tour(TOUR)
    assert len(slides) >= 10
    for directive, narration in slides:
        assert narration, directive
        assert build.render(directive).size == (1280, 720)


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


def test_committed_tour_is_five_to_seven_minutes_with_both_streams():
    require("ffprobe")
    streams, duration = probe(VIDEO)
    assert 300 <= duration <= 420
    assert streams["video"]["codec_name"] == "h264" and streams["video"]["width"] == 1280
    assert streams["audio"]["codec_name"] == "aac"
    assert VIDEO.stat().st_size < 20 * 2 ** 20
