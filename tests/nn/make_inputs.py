#!/usr/bin/env python3
"""Makes the inputs of the wasi-nn tests in OUTDIR:

  text.png    three lines of English in DejaVu Sans, black on white (RGB)
  text.txt    those lines, as the OCR should read them
  speech.wav  16 kHz mono 16-bit PCM: three phrases spoken by espeak-ng,
              with a second of silence before, between and after them
  speech.txt  the phrases and where each was placed, in samples

Deterministic: the same inputs give the same files (espeak-ng speaks at
22050 Hz; the audio is resampled to 16 kHz here with a fixed filter).

usage: make_inputs.py OUTDIR
"""

import os
import subprocess
import sys
import tempfile
import wave

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = [
    "The quick brown fox",
    "jumps over the lazy dog",
    "WebAssembly on the edge",
]
PHRASES = [
    "The weather is lovely today.",
    "Please open the window.",
    "Thank you very much.",
]
RATE = 16000
SILENCE_S = 1.0


def render_text(path_png, path_txt):
    font = ImageFont.truetype(FONT, 36)
    margin, spacing = 40, 28
    heights = []
    widths = []
    for line in LINES:
        left, top, right, bottom = font.getbbox(line)
        widths.append(right - left)
        heights.append(bottom - top)
    line_h = max(heights)
    width = max(widths) + 2 * margin
    height = len(LINES) * line_h + (len(LINES) - 1) * spacing + 2 * margin
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    y = margin
    for line in LINES:
        left, top, _, _ = font.getbbox(line)
        draw.text((margin - left, y - top), line, font=font, fill=(0, 0, 0))
        y += line_h + spacing
    img.save(path_png, format="PNG", optimize=False)
    with open(path_txt, "w", encoding="utf-8") as f:
        f.write("\n".join(LINES) + "\n")


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected mono 16-bit audio from espeak-ng")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return rate, data.astype(np.float64) / 32768.0


def resample(x, src, dst, taps=64):
    """Windowed-sinc resampling from src to dst Hz (Blackman window, cut-off
    at 0.9 of the lower Nyquist frequency)."""
    if src == dst:
        return x
    n_out = int(len(x) * dst / src)
    t = np.arange(n_out) * (src / dst)  # output instants in input samples
    cutoff = 0.9 * min(src, dst) / 2 / src  # cycles per input sample
    base = np.floor(t).astype(np.int64)
    out = np.zeros(n_out)
    norm = np.zeros(n_out)
    half = taps // 2
    for k in range(-half + 1, half + 1):
        idx = base + k
        d = t - idx
        win = 0.42 + 0.5 * np.cos(np.pi * d / half) + 0.08 * np.cos(2 * np.pi * d / half)
        h = 2 * cutoff * np.sinc(2 * cutoff * d) * win
        valid = (idx >= 0) & (idx < len(x))
        out[valid] += x[idx[valid]] * h[valid]
        norm += h
    return out / norm


def speak(text, tmpdir, i):
    path = os.path.join(tmpdir, f"phrase{i}.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", path, text], check=True)
    rate, x = read_wav(path)
    return resample(x, rate, RATE)


def make_speech(path_wav, path_txt):
    silence = np.zeros(int(SILENCE_S * RATE))
    parts, placed, pos = [silence], [], len(silence)
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(PHRASES):
            x = speak(text, tmp, i)
            parts += [x, silence]
            placed.append((pos, pos + len(x), text))
            pos += len(x) + len(silence)
    audio = np.concatenate(parts)
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path_wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    with open(path_txt, "w", encoding="utf-8") as f:
        for start, end, text in placed:
            f.write(f"{start} {end} {text}\n")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    render_text(os.path.join(out, "text.png"), os.path.join(out, "text.txt"))
    make_speech(os.path.join(out, "speech.wav"), os.path.join(out, "speech.txt"))


if __name__ == "__main__":
    main()
