#!/usr/bin/env bash
# Build the WebAssembly guest programs under examples/ and copy them to
# target/guests/:
#
#   hello-p1.wasm    examples/rust/hello-p1  (wasm32-wasip1)
#   hello-p2.wasm    examples/rust/hello-p2  (wasm32-wasip2 component)
#   hostile-p1.wasm  examples/hostile        (wasm32-wasip1)
#   hostile-p2.wasm  examples/hostile        (wasm32-wasip2 component)
#
# The build is skipped when neither the guest sources nor the toolchain have
# changed since the last successful run (see target/guests/.stamp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFEST="$ROOT/examples/Cargo.toml"
TARGET_DIR="$ROOT/target"
OUT_DIR="$TARGET_DIR/guests"
STAMP="$OUT_DIR/.stamp"

# artifact name | cargo package | rust target
GUESTS=(
    "hello-p1.wasm|hello-p1|wasm32-wasip1"
    "hello-p2.wasm|hello-p2|wasm32-wasip2"
    "hostile-p1.wasm|hostile|wasm32-wasip1"
    "hostile-p2.wasm|hostile|wasm32-wasip2"
)
TARGETS=(wasm32-wasip1 wasm32-wasip2)

for tool in cargo rustc sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found in PATH; run scripts/setup.sh" >&2
        exit 1
    fi
done

# Hash of everything cargo reads under examples/, plus the exact toolchain.
compute_stamp() {
    (
        cd "$ROOT"
        find examples -type f \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) \
            -not -path 'examples/target/*' -print0 \
            | LC_ALL=C sort -z \
            | xargs -0 -r sha256sum
        rustc -Vv
    ) | sha256sum | cut -d' ' -f1
}

print_sizes() {
    local entry name
    for entry in "${GUESTS[@]}"; do
        name="${entry%%|*}"
        printf '  %-16s %10s bytes\n' "$name" "$(wc -c <"$OUT_DIR/$name" | tr -d ' ')"
    done
}

all_artifacts_exist() {
    local entry
    for entry in "${GUESTS[@]}"; do
        [[ -f "$OUT_DIR/${entry%%|*}" ]] || return 1
    done
}

stamp="$(compute_stamp)"
if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$stamp" ]] && all_artifacts_exist; then
    echo "guests up to date"
    print_sizes
    exit 0
fi

if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed)"
    for t in "${TARGETS[@]}"; do
        if ! grep -qx "$t" <<<"$installed"; then
            echo "error: rustup target $t is not installed; run scripts/setup.sh" >&2
            exit 1
        fi
    done
else
    # Without rustup, ask rustc whether the standard library for each target is there.
    sysroot="$(rustc --print sysroot)"
    for t in "${TARGETS[@]}"; do
        if [[ ! -d "$sysroot/lib/rustlib/$t" ]]; then
            echo "error: rustup target $t is not installed; run scripts/setup.sh" >&2
            exit 1
        fi
    done
fi

mkdir -p "$OUT_DIR"
rm -f "$STAMP"

for entry in "${GUESTS[@]}"; do
    IFS='|' read -r name pkg target <<<"$entry"
    echo "building $name ($pkg, $target)"
    cargo build --release --locked \
        --manifest-path "$MANIFEST" \
        --target-dir "$TARGET_DIR" \
        --target "$target" \
        -p "$pkg"
    cp "$TARGET_DIR/$target/release/$pkg.wasm" "$OUT_DIR/$name"
done

echo "$stamp" >"$STAMP"
echo "guests built in $OUT_DIR"
print_sizes
