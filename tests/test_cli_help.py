"""Every script's --help shows each flag's default (the brief's CLI convention)."""
import argparse
import sys
from pathlib import Path

import pytest

import bench
import choose_fade
import compare
import experiments
import screen_tints
import test_colorize
import train_colorize
import train_mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "videotour"))
import build as videotour_build  # noqa: E402


class Captured(Exception):
    pass


@pytest.mark.parametrize("entry", [train_mean.parse_args, train_colorize.parse_args, test_colorize.parse_args,
                                   compare.parse_args, choose_fade.parse_args, screen_tints.parse_args, experiments.main, bench.main, videotour_build.main])
def test_every_flag_has_help_showing_its_default(entry, monkeypatch):
    parsers = []

    def capture(parser, *args, **kwargs):
        parsers.append(parser)
        raise Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(Captured):
        entry()
    parser = parsers[0]
    flags = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert [a.option_strings[0] for a in flags if not a.help] == []
    # without any whitespace: argparse wraps long defaults, also after a hyphen inside a path ("ci-" / "clone")
    help_text = "".join(parser.format_help().split())
    for action in flags:
        if action.default not in (None, False):
            assert "".join(f"(default: {action.default})".split()) in help_text, action.option_strings[0]
