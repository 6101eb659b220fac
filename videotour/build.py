"""Build the narrated video tour (videotour/tour.mp4) from videotour/tour.txt and the current files.

Owner of the tour only. tour.txt is a list of slides: a line starting with ">" says what is on screen, the lines
after it (up to the next ">") are what the narrator says meanwhile. Slide kinds:
    > title TITLE | SUBTITLE
    > code FILE NAME [NAME ...]     the named functions, classes or Class.methods of FILE, with line numbers
    > code FILE START-END           those lines of FILE
    > log FILE [START-END] | CAPTION   a text file (a run's log) as a terminal
    > image FILE | CAPTION          a PNG, scaled to fit
    > text FILE HEADING | CAPTION   one "## HEADING" section of a markdown file
Each slide is rendered to a 1280x720 PNG (pygments for code, DejaVu Sans Mono), its narration is spoken by
espeak-ng, and the slide stays up exactly as long as its narration plus PAUSE seconds. ffmpeg then encodes one
H.264 + AAC MP4. Needs: ffmpeg, espeak-ng, fonts-dejavu-core (Debian packages), pygments and pillow (pip).

    python videotour/build.py                       # the full tour, about 6 minutes, ~1 min to build
    python videotour/build.py --quick --out /tmp/q.mp4   # the first two slides, first sentence each (a test)
"""
import argparse
import ast
import io
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

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


def text_block(lines, size, fg, bg):
    """Monospace text as an image (tabs expanded, long lines cut)."""
    face = font(size)
    lines = [line.expandtabs(4)[:150] for line in lines] or [""]
    step = size + 4
    width = max(int(face.getlength(line)) for line in lines) + 24
    block = Image.new("RGB", (max(width, 40), step * len(lines) + 24), bg)
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
            lines.append(line)
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


SLIDES = {"title": title_slide, "code": code_slide, "log": log_slide, "image": image_slide, "text": text_slide}


def render(directive):
    kind, _, args = directive.partition(" ")
    if kind not in SLIDES:
        raise TourError(f"unknown slide kind {kind!r} in '> {directive}' (kinds: {', '.join(SLIDES)})")
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
    """One MP4: each slide PNG held for its duration (ffmpeg concat demuxer), with the joined narration."""
    listing = slides[0].parent / "slides.ffconcat"
    entries = [f"file '{png.name}'\nduration {seconds:.3f}" for png, seconds in zip(slides, durations)]
    listing.write_text("ffconcat version 1.0\n" + "\n".join(entries) + f"\nfile '{slides[-1].name}'\n")
    tmp = out.with_name(f".{out.stem}.tmp.mp4")
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-i", str(audio), "-vf", "fps=10,format=yuv420p", "-c:v", "libx264", "-preset", "medium",
                    "-tune", "stillimage", "-crf", "26", "-c:a", "aac", "-b:a", "64k", "-ac", "1",
                    "-movflags", "+faststart", "-t", f"{sum(durations):.3f}", str(tmp)], check=True)
    tmp.replace(out)


def build(tour, out, quick=False):
    """Render, narrate and encode the tour; returns (slides, seconds)."""
    for tool in ("ffmpeg", "espeak-ng"):
        if shutil.which(tool) is None:
            raise TourError(f"{tool} not found (apt-get install ffmpeg espeak-ng fonts-dejavu-core)")
    slides = parse_tour(tour)
    if quick:
        slides = [(directive, re.split(r"(?<=[.!?])\s", narration)[0]) for directive, narration in slides[:2]]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        pngs, wavs, durations = [], [], []
        for i, (directive, narration) in enumerate(slides):
            if not narration:
                raise TourError(f"slide '> {directive}' has no narration")
            pngs.append(work / f"slide{i:03d}.png")
            render(directive).save(pngs[-1])
            wavs.append(work / f"slide{i:03d}.wav")
            durations.append(speak(narration, wavs[-1]) + PAUSE)
        join_wavs(wavs, PAUSE, work / "narration.wav")
        out.parent.mkdir(parents=True, exist_ok=True)
        encode(pngs, durations, work / "narration.wav", out)
    return len(slides), sum(durations)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's line breaks and shows every flag's default."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--tour", default=str(HERE / "tour.txt"), help="slides and narration")
    parser.add_argument("--out", default=str(HERE / "tour.mp4"), help="MP4 to write")
    parser.add_argument("--quick", action="store_true", help="only the first two slides, one sentence each")
    args = parser.parse_args(argv)
    try:
        count, seconds = build(Path(args.tour), Path(args.out), args.quick)
    except (TourError, OSError) as err:
        sys.exit(f"error: {err}")
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: {err.cmd[0]} failed: {err.stderr.decode(errors='replace').strip() if err.stderr else ''}")
    print(f"{args.out}: {count} slides, {seconds:.1f} s")


if __name__ == "__main__":
    main()
