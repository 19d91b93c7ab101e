#!/usr/bin/env python3
"""Reads the text in an image natively, with RapidOCR 1.4.4
(rapidocr_onnxruntime) on ONNX Runtime: the reference the nn-ocr guest is
compared with. Same models, same output:

  one line per text box in reading order; with --boxes,
  `x,y x,y x,y x,y<TAB>score<TAB>text` (corners clockwise from top-left)

The angle classifier is off, as the guest has none. Palette images are
expanded to RGB and 16-bit grey reduced to its high byte before RapidOCR
sees them, as the guest decodes them (RapidOCR alone would read a palette
image's indices as grey levels).

--repeat N reads the image N more times and prints the mean time of those
reads on stderr (the first loads the models).

usage: ocr_reference.py --det DET.onnx --rec REC.onnx [--keys KEYS.txt] [--boxes] [--repeat N] IMAGE
"""

import argparse
import logging
import sys
import time

import numpy as np


def coord(v):
    """A float32 coordinate written as Rust's `{}` writes an f32: the
    shortest decimal that reads back as the same float, no trailing `.0`."""
    return np.format_float_positional(np.float32(v), trim="-")


def load(path):
    from PIL import Image

    img = Image.open(path)
    if img.mode == "P":
        return img.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I"):
        return Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8), mode="L")
    return img


def main():
    p = argparse.ArgumentParser(description="RapidOCR 1.4.4 on ONNX Runtime, the nn-ocr guest's output format")
    p.add_argument("--det", required=True, help="PP-OCRv4 detection model")
    p.add_argument("--rec", required=True, help="PP-OCRv4 recognition model")
    p.add_argument("--keys", help="dictionary, one entry a line (default: the model's metadata)")
    p.add_argument("--boxes", action="store_true", help="also print corners and scores")
    p.add_argument("--repeat", type=int, default=0, help="time N more reads of the image")
    p.add_argument("image")
    args = p.parse_args()

    logging.disable(logging.WARNING)
    from rapidocr_onnxruntime import RapidOCR

    kwargs = {"det_model_path": args.det, "rec_model_path": args.rec}
    if args.keys:
        kwargs["rec_keys_path"] = args.keys
    engine = RapidOCR(**kwargs)
    result, _ = engine(load(args.image), use_cls=False)
    if args.repeat > 0:
        started = time.perf_counter()
        for _ in range(args.repeat):
            engine(load(args.image), use_cls=False)
        each = (time.perf_counter() - started) / args.repeat
        print(f"ocr_reference: {args.repeat} reads after the first: {each * 1e3:.1f} ms each", file=sys.stderr)
    if not result:
        print(f"ocr_reference: no text found in {args.image}", file=sys.stderr)
        return
    out = []
    for box, text, score in result:
        if args.boxes:
            corners = " ".join(f"{coord(x)},{coord(y)}" for x, y in box)
            out.append(f"{corners}\t{score:.5f}\t{text}")
        else:
            out.append(text)
    sys.stdout.write("".join(line + "\n" for line in out))


if __name__ == "__main__":
    main()
