"""Build the narrated video tour (videotour/tour.mp4) from videotour/tour.txt, the current files and live runs.

Owner of the tour only. tour.txt is a list of slides: a line starting with ">" says what is on screen, the lines
after it (up to the next ">") are what the narrator says meanwhile. Slide kinds:
    > title TITLE | SUBTITLE
    > code FILE NAME [NAME ...]     the named functions, classes or Class.methods of FILE, with line numbers
    > code FILE START-END           those lines of FILE
    > run COMMAND                   run COMMAND now (from the project folder) and show its terminal as it ran
    > log FILE [START-END] | CAPTION   a text file (a run's log) as a terminal
    > image FILE | CAPTION          a PNG, scaled to fit
    > text FILE HEADING | CAPTION   one "## HEADING" section of a markdown file
"{out}" in a slide line is a scratch folder of this build, where the runs write (nothing in the project is
overwritten), so a later image slide can show what a run wrote. A run is recorded in a pseudo-terminal (so its
progress line redraws as a user sees it) with the time of every output chunk, and replayed through the pyte
terminal emulator into frames: at its real speed, or faster when the run outlasts its narration, and the title
bar then says how much faster.
Each slide is rendered to 1280x720 PNGs (pygments for code, DejaVu Sans Mono), its narration is spoken by
espeak-ng, and the slide stays up exactly as long as its narration plus PAUSE seconds. ffmpeg then encodes one
H.264 + AAC MP4, and the build prints when each slide starts and for how long (videotour/build.log is the
committed tour's listing). Needs: ffmpeg, espeak-ng, fonts-dejavu-core (Debian packages), pygments, pillow and
pyte (pip).

    python videotour/build.py > videotour/build.log   # the full tour, about 7 minutes, ~5 min to build
    python videotour/build.py --quick --out /tmp/q.mp4   # the first two slides, first sentence each (a test)
"""
import argparse
import ast
import fcntl
import io
import math
import os
import pty
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
import wave
from pathlib import Path

import pyte
from PIL import Image, ImageDraw, ImageFont
from pygments import highlight
from pygments.formatters import ImageFormatter
from pygments.lexers import PythonLexer

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, BAR = 1280, 720, 56  # frame size and the title bar's height
PAUSE = 0.6  # seconds of silence after each narration
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
VOICE, WORDS_PER_MINUTE = "en-us", 172
BACKGROUND, BAR_COLOR, TERMINAL = "#fdfdfb", "#24476b", "#1e1e1e"
COLUMNS, ROWS = 110, 30  # the recorded terminal: fits the frame at 16 px
FPS = 5  # replay frames per second of video
HOLD = 2.0  # seconds a finished run's last screen stays up when its replay is sped up


class TourError(Exception):
    """A problem with tour.txt, a file it names, or a missing tool: printed as one line."""


def font(size, bold=False):
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    try:
        return ImageFont.truetype(str(FONT_DIR / name), size)
    except OSError:
        raise TourError(f"{FONT_DIR / name}: font not found (apt-get install fonts-dejavu-core)") from None


def parse_tour(path):
    """[(directive, narration)] from tour.txt; '#' lines are comments."""
    slides = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or (not line.strip() and not slides):
            continue
        if line.startswith(">"):
            slides.append([line[1:].strip(), []])
        elif not slides:
            raise TourError(f"{path}: narration before the first '>' slide line")
        else:
            slides[-1][1].append(line.strip())
    return [(directive, " ".join(" ".join(words).split())) for directive, words in slides]


# ---------------------------------------------------------------- slides

def canvas(title):
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, WIDTH, BAR], fill=BAR_COLOR)
    draw.text((24, BAR // 2), title, font=font(24, bold=True), fill="white", anchor="lm")
    return image


def paste_fit(image, content, box_top=BAR + 12, margin=24):
    """Paste `content` centred below the title bar, shrunk (never enlarged beyond 2x) to fit."""
    box_w, box_h = WIDTH - 2 * margin, HEIGHT - box_top - margin
    scale = min(box_w / content.width, box_h / content.height, 2.0)
    if scale != 1:
        content = content.resize((max(1, round(content.width * scale)), max(1, round(content.height * scale))),
                                 Image.LANCZOS)
    image.paste(content, ((WIDTH - content.width) // 2, box_top + (box_h - content.height) // 2))
    return image


def project_file(name):
    path = ROOT / name
    if not path.is_file():
        raise TourError(f"{name}: no such file in the project")
    return path


def _spans(nodes, prefix=""):
    """{name: (first line, last line)} of the functions and classes among `nodes`, methods as Class.method."""
    spans = {}
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = prefix + node.name
            spans[name] = (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno)
            if isinstance(node, ast.ClassDef):
                spans.update(_spans(node.body, name + "."))
    return spans


def symbol_lines(path, names):
    """First and last line spanning the named functions, classes or Class.methods of a Python file."""
    spans = _spans(ast.parse(path.read_text()).body)
    missing = [name for name in names if name not in spans]
    if missing:
        raise TourError(f"{path.name}: no function or class {missing[0]!r}")
    return min(spans[n][0] for n in names), max(spans[n][1] for n in names)


def line_range(text, total):
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]) <= total:
        raise TourError(f"line range {text!r}: expected START-END within 1-{total}")
    return int(match[1]), int(match[2])


def code_slide(args):
    name, *selectors = args.split()
    path = project_file(name)
    lines = path.read_text().splitlines()
    if len(selectors) == 1 and re.fullmatch(r"\d+-\d+", selectors[0]):
        first, last = line_range(selectors[0], len(lines))
    else:
        first, last = symbol_lines(path, selectors)
    code = "\n".join(lines[first - 1:last])
    png = highlight(code, PythonLexer(), ImageFormatter(font_name="DejaVu Sans Mono", font_size=16,
                                                        line_numbers=True, line_number_start=first,
                                                        style="friendly", image_pad=8, line_pad=3))
    content = Image.open(io.BytesIO(png)).convert("RGB")
    return paste_fit(canvas(f"{name}, lines {first}-{last}"), content)


def text_block(lines, size, fg, bg, rows=None):
    """Monospace text as an image (tabs expanded, long lines cut), `rows` lines high if given; a terminal's width
    (COLUMNS) at least, so that a growing terminal keeps its scale from frame to frame."""
    face = font(size)
    lines = [line.expandtabs(4)[:150] for line in lines] or [""]
    step = size + 4
    width = max([int(face.getlength(line)) for line in lines] + [int(face.getlength("M" * COLUMNS))]) + 24
    block = Image.new("RGB", (width, step * max(len(lines), rows or 0) + 24), bg)
    draw = ImageDraw.Draw(block)
    for i, line in enumerate(lines):
        draw.text((12, 12 + i * step), line, font=face, fill=fg)
    return block


def split_caption(args):
    left, _, caption = args.partition("|")
    return left.strip(), caption.strip()


def log_slide(args):
    spec, caption = split_caption(args)
    name, *rest = spec.split()
    lines = [line for line in project_file(name).read_text().splitlines() if "\r" not in line]
    first, last = line_range(rest[0], len(lines)) if rest else (1, len(lines))
    block = text_block(["$ " + caption] + lines[first - 1:last], 16, "#e6e6e6", TERMINAL)
    return paste_fit(canvas(f"{name}"), block)


def image_slide(args):
    name, caption = split_caption(args)
    return paste_fit(canvas(caption or name), Image.open(project_file(name)).convert("RGB"))


def text_slide(args):
    spec, caption = split_caption(args)
    name, heading = spec.split(maxsplit=1)
    lines, inside = [], False
    for line in project_file(name).read_text().splitlines():
        if line.startswith("#"):
            inside = line.lstrip("#").strip() == heading
            continue
        if inside:
            lines.append(re.sub(r" ?<!--.*?-->", "", line))  # markdown comments are not shown
    if not lines:
        raise TourError(f"{name}: no section {heading!r}")
    while lines and not lines[-1].strip():
        lines.pop()
    return paste_fit(canvas(caption or heading), text_block(lines, 16, "#1a1a1a", BACKGROUND))


def title_slide(args):
    title, subtitle = split_caption(args)
    image = Image.new("RGB", (WIDTH, HEIGHT), BAR_COLOR)
    draw = ImageDraw.Draw(image)
    draw.text((WIDTH // 2, HEIGHT // 2 - 40), title, font=font(56, bold=True), fill="white", anchor="mm")
    draw.text((WIDTH // 2, HEIGHT // 2 + 40), subtitle, font=font(26), fill="#d8e4f0", anchor="mm")
    return image


# ---------------------------------------------------------------- live runs

def record(words):
    """Run `words` from the project folder in a COLUMNS x ROWS pseudo-terminal; returns ([(seconds since the start,
    output bytes)], seconds it ran). A failing run is a TourError with its last line of output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    command = [sys.executable if words[0] == "python" else words[0], *words[1:]]
    start = time.perf_counter()
    try:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                   env={**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS)})
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal has exited
            break
        if not chunk:
            break
        chunks.append((time.perf_counter() - start, chunk))
    os.close(master)
    status = process.wait()
    seconds = time.perf_counter() - start
    if status != 0:
        output = b"".join(c for _, c in chunks).decode(errors="replace").strip().splitlines() or ["no output"]
        raise TourError(f"'{shlex.join(words)}' exited with status {status}: {output[-1].strip()}")
    return chunks, seconds


def replay(prompt, chunks, recorded, seconds):
    """The terminal screens of a recording played back over `seconds` of video: ([(lines, seconds shown)], speed).
    Real time if the run fits, else sped up so that its end is on screen for the last HOLD seconds."""
    speed = max(1.0, recorded / max(seconds - HOLD, seconds / 2))
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(prompt.encode() + b"\r\n")
    shown, fed = [], 0
    for step in range(math.ceil(seconds * FPS)):
        while fed < len(chunks) and chunks[fed][0] <= step / FPS * speed:
            stream.feed(chunks[fed][1])
            fed += 1
        lines = [line.rstrip() for line in screen.display]
        if not shown or shown[-1][0] != lines:
            shown.append((lines, step / FPS))
    ends = [start for _, start in shown[1:]] + [seconds]
    return [(lines, end - start) for (lines, start), end in zip(shown, ends)], speed


def run_frames(command, seconds):
    """Record `command` now and return its replay over `seconds` as [(1280x720 image, seconds shown)]."""
    words = shlex.split(command)
    chunks, recorded = record(words)
    screens, speed = replay(f"$ {command}", chunks, recorded, seconds)
    pace = "real time" if speed == 1 else f"played at {speed:.1f}x speed"
    title = f"live run: {recorded:.0f} s as recorded, {pace}"
    return [(paste_fit(canvas(title), text_block(lines, 16, "#e6e6e6", TERMINAL, rows=ROWS)), shown)
            for lines, shown in screens]


SLIDES = {"title": title_slide, "code": code_slide, "log": log_slide, "image": image_slide, "text": text_slide}


def render(directive):
    kind, _, args = directive.partition(" ")
    if kind not in SLIDES:
        raise TourError(f"unknown slide kind {kind!r} in '> {directive}' (kinds: {', '.join([*SLIDES, 'run'])})")
    return SLIDES[kind](args.strip())


# ---------------------------------------------------------------- sound and video

def speak(text, path):
    """espeak-ng's WAV of `text`; returns its duration in seconds."""
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(path), text], check=True,
                   capture_output=True)
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def join_wavs(parts, pause, out):
    """Concatenate WAVs (same format, as espeak-ng writes them), each followed by `pause` seconds of silence."""
    with wave.open(str(parts[0])) as first:
        params = first.getparams()
    silence = b"\0" * (round(pause * params.framerate) * params.sampwidth * params.nchannels)
    with wave.open(str(out), "wb") as joined:
        joined.setparams(params)
        for part in parts:
            with wave.open(str(part)) as wav:
                joined.writeframes(wav.readframes(wav.getnframes()))
            joined.writeframes(silence)


def encode(slides, durations, audio, out):
    """One MP4: each frame PNG held for its duration (ffmpeg concat demuxer), with the joined narration."""
    listing = slides[0].parent / "slides.ffconcat"
    entries = [f"file '{png.name}'\nduration {seconds:.3f}" for png, seconds in zip(slides, durations)]
    listing.write_text("ffconcat version 1.0\n" + "\n".join(entries) + f"\nfile '{slides[-1].name}'\n")
    tmp = out.with_name(f".{out.stem}.tmp.mp4")
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-i", str(audio), "-vf", "fps=10,format=yuv420p", "-c:v", "libx264", "-preset", "medium",
                    "-tune", "stillimage", "-crf", "26", "-c:a", "aac", "-b:a", "64k", "-ac", "1",
                    "-movflags", "+faststart", "-t", f"{sum(durations):.3f}", str(tmp)], check=True)
    tmp.replace(out)


def frames(directive, seconds):
    """[(image, seconds shown)] of one slide that lasts `seconds`: one image, or a run's replay."""
    kind, _, args = directive.partition(" ")
    if kind == "run":
        return run_frames(args.strip(), seconds)
    return [(render(directive), seconds)]


def build(tour, out, quick=False):
    """Render, narrate, run and encode the tour; returns [(directive, start, seconds)] of its slides."""
    for tool in ("ffmpeg", "espeak-ng"):
        if shutil.which(tool) is None:
            raise TourError(f"{tool} not found (apt-get install ffmpeg espeak-ng fonts-dejavu-core)")
    slides = parse_tour(tour)
    if quick:
        slides = [(directive, re.split(r"(?<=[.!?])\s", narration)[0]) for directive, narration in slides[:2]]
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory(prefix="facecolor-tour-") as scratch:
        work = Path(work)
        pngs, wavs, durations, listing, start = [], [], [], [], 0.0
        for i, (directive, narration) in enumerate(slides):
            if not narration:
                raise TourError(f"slide '> {directive}' has no narration")
            wavs.append(work / f"slide{i:03d}.wav")
            seconds = speak(narration, wavs[-1]) + PAUSE
            listing.append((directive, start, seconds))
            start += seconds
            for j, (image, shown) in enumerate(frames(directive.replace("{out}", scratch), seconds)):
                pngs.append(work / f"slide{i:03d}_{j:04d}.png")
                image.save(pngs[-1])
                durations.append(shown)
        join_wavs(wavs, PAUSE, work / "narration.wav")
        out.parent.mkdir(parents=True, exist_ok=True)
        encode(pngs, durations, work / "narration.wav", out)
    return listing


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's line breaks and shows every flag's default."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--tour", default=str(HERE / "tour.txt"), help="slides and narration")
    parser.add_argument("--out", default=str(HERE / "tour.mp4"), help="MP4 to write")
    parser.add_argument("--quick", action="store_true", help="only the first two slides, one sentence each")
    args = parser.parse_args(argv)
    try:
        listing = build(Path(args.tour), Path(args.out), args.quick)
    except (TourError, OSError) as err:
        sys.exit(f"error: {err}")
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: {err.cmd[0]} failed: {err.stderr.decode(errors='replace').strip() if err.stderr else ''}")
    for directive, start, seconds in listing:
        print(f"{start // 60:3.0f}:{start % 60:04.1f}  {seconds:5.1f} s  {directive}")
    total = sum(seconds for _, _, seconds in listing)
    live = sum(seconds for directive, _, seconds in listing if directive.startswith("run "))
    print(f"{args.out}: {len(listing)} slides, {total:.1f} s, live runs {live:.1f} s")


if __name__ == "__main__":
    main()
