#!/usr/bin/env bash
# Builds the WebAssembly guest programs under examples/ into target/guests/
# (or $GUESTS_DIR):
#
#   hello-p1.wasm            examples/rust/hello-p1   Rust, wasm32-wasip1
#   hello-p2.wasm            examples/rust/hello-p2   Rust, wasm32-wasip2 component
#   hello-p3.wasm            examples/rust/hello-p3   Rust, WASI 0.3 command component
#   hostile-p1.wasm          examples/hostile         Rust, wasm32-wasip1
#   hostile-p2.wasm          examples/hostile         Rust, wasm32-wasip2 component
#   transform-rust.wasm      examples/rust/transform  Rust, wasm32-wasip1
#   transform-rust-p2.wasm   examples/rust/transform  Rust, wasm32-wasip2 component
#   transform-c.wasm         examples/c               C, clang + wasi-libc
#   transform-cpp.wasm       examples/cpp             C++, clang++ + libc++
#   transform-go.wasm        examples/go              Go, GOOS=wasip1
#   transform-as.wasm        examples/assemblyscript  AssemblyScript + WASI shim
#   http-{hello,echo,upstream,hostile}.wasm
#                            examples/http/*          Rust wasi:http proxy components
#   http-hello-p3.wasm       examples/http/hello-p3   Rust, WASI 0.3 wasi:http service component
#   nn-ocr.wasm              examples/nn/ocr          Rust, wasm32-wasip1, wasi-nn (PP-OCRv4)
#   nn-vad.wasm              examples/nn/vad          Rust, wasm32-wasip1, wasi-nn (Silero VAD)
#   nn-ocr-p2.wasm, nn-vad-p2.wasm
#                            examples/nn/{ocr,vad}    the same, wasm32-wasip2 components importing wasi:nn
#   http-ocr.wasm            examples/http/ocr        Rust wasi:http component: POST a PNG, get its text (wasi:nn)
#
# The WASI 0.3 (p3) guests are built for wasm32-wasip2 too (there is no p3
# target yet) and export the 0.3 worlds through the `wasip3` crate.
#
# Usage: scripts/build-guests.sh [rust|c|cpp|go|assemblyscript ...]
# (no argument: all of them). Each group is rebuilt only when the hash of its
# sources and of its toolchain's version changes (stamps in $GUESTS_DIR/.stamps),
# and copied from the machine's guest cache when it was built there before.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EX="$ROOT/examples"
TARGET_DIR="$ROOT/target"
OUT_DIR="${GUESTS_DIR:-$TARGET_DIR/guests}"
mkdir -p "$OUT_DIR/.stamps"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

ALL_GROUPS=(rust c cpp go assemblyscript)
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=("${ALL_GROUPS[@]}")

for tool in sha256sum find sort; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found in PATH" >&2; exit 1; }
done

# Hash of the given files (sorted) plus a toolchain description on stdin.
content_hash() {
    {
        (cd "$ROOT" && find "$@" -type f \
            -not -path '*/node_modules/*' -not -path '*/build/*' -not -path 'examples/target/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 -r sha256sum)
        cat
    } | sha256sum | cut -d' ' -f1
}

# up_to_date GROUP HASH ARTIFACT...: whether the stamp matches and outputs exist.
up_to_date() {
    local group="$1" hash="$2"
    shift 2
    [ -f "$OUT_DIR/.stamps/$group" ] && [ "$(cat "$OUT_DIR/.stamps/$group")" = "$hash" ] || return 1
    local a
    for a in "$@"; do [ -f "$OUT_DIR/$a" ] || return 1; done
}

size_of() { printf '  %-24s %10s bytes\n' "$1" "$(wc -c <"$OUT_DIR/$1" | tr -d ' ')"; }

# Guests built from the same sources with the same toolchain are the same:
# each group's artifacts are kept by content hash outside the checkout, so a
# fresh clone on this machine (CI) copies them instead of building them.
# WASMLAYER_GUEST_CACHE=off turns it off.
GUEST_CACHE="${WASMLAYER_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmlayer/guests}"

# restore GROUP HASH: copies the group's artifacts from the cache, if all there.
restore() {
    local dir="$GUEST_CACHE/$1-$2" a
    [ "$GUEST_CACHE" != off ] && [ -d "$dir" ] || return 1
    for a in "${ARTIFACTS[@]}"; do [ -f "$dir/$a" ] || return 1; done
    for a in "${ARTIFACTS[@]}"; do cp "$dir/$a" "$OUT_DIR/$a"; done
}

# keep GROUP HASH: stores the group's artifacts in the cache (the three
# newest versions of each group are kept).
keep() {
    [ "$GUEST_CACHE" != off ] || return 0
    local dir="$GUEST_CACHE/$1-$2" tmp a
    mkdir -p "$GUEST_CACHE" 2>/dev/null || return 0
    tmp="$(mktemp -d "$GUEST_CACHE/.tmp.XXXXXX")" || return 0
    for a in "${ARTIFACTS[@]}"; do cp "$OUT_DIR/$a" "$tmp/$a"; done
    rm -rf "$dir"
    mv "$tmp" "$dir"
    # shellcheck disable=SC2012
    ls -1dt "$GUEST_CACHE/$1-"* 2>/dev/null | tail -n +4 | xargs -r rm -rf
}

# Runs BUILD_CMD... unless GROUP's hash is unchanged; ARTIFACTS are listed in $ARTIFACTS.
build_group() {
    local group="$1" hash="$2"
    shift 2
    if up_to_date "$group" "$hash" "${ARTIFACTS[@]}"; then
        echo "$group guests up to date"
    elif restore "$group" "$hash"; then
        echo "$group guests from the cache ($GUEST_CACHE, same sources and toolchain)"
        echo "$hash" >"$OUT_DIR/.stamps/$group"
    else
        rm -f "$OUT_DIR/.stamps/$group"
        echo "building $group guests"
        "$@"
        echo "$hash" >"$OUT_DIR/.stamps/$group"
        keep "$group" "$hash"
    fi
    local a
    for a in "${ARTIFACTS[@]}"; do size_of "$a"; done
}

# --- Rust: one cargo workspace, two targets ---------------------------------
# artifact | cargo package | rust target
RUST_GUESTS=(
    "hello-p1.wasm|hello-p1|wasm32-wasip1"
    "hello-p2.wasm|hello-p2|wasm32-wasip2"
    "hello-p3.wasm|hello-p3|wasm32-wasip2"
    "hostile-p1.wasm|hostile|wasm32-wasip1"
    "hostile-p2.wasm|hostile|wasm32-wasip2"
    "transform-rust.wasm|transform|wasm32-wasip1"
    "transform-rust-p2.wasm|transform|wasm32-wasip2"
    "http-hello.wasm|http-hello|wasm32-wasip2"
    "http-echo.wasm|http-echo|wasm32-wasip2"
    "http-upstream.wasm|http-upstream|wasm32-wasip2"
    "http-hostile.wasm|http-hostile|wasm32-wasip2"
    "http-hello-p3.wasm|http-hello-p3|wasm32-wasip2"
    "nn-ocr.wasm|nn-ocr|wasm32-wasip1"
    "nn-vad.wasm|nn-vad|wasm32-wasip1"
    "nn-ocr-p2.wasm|nn-ocr|wasm32-wasip2"
    "nn-vad-p2.wasm|nn-vad|wasm32-wasip2"
    "http-ocr.wasm|http-ocr|wasm32-wasip2"
)

check_rust() {
    local tool t
    for tool in cargo rustc; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "error: $tool not found; install Rust with rustup, then run scripts/setup.sh" >&2
            exit 1
        }
    done
    local sysroot
    sysroot="$(rustc --print sysroot)"
    for t in wasm32-wasip1 wasm32-wasip2; do
        if [ ! -d "$sysroot/lib/rustlib/$t" ]; then
            echo "error: the Rust standard library for $t is not installed; run scripts/setup.sh" >&2
            exit 1
        fi
    done
}

build_rust() {
    local entry name pkg target
    for entry in "${RUST_GUESTS[@]}"; do
        IFS='|' read -r name pkg target <<<"$entry"
        cargo build --release --locked --quiet \
            --manifest-path "$EX/Cargo.toml" --target-dir "$TARGET_DIR" --target "$target" -p "$pkg"
        # Binaries keep the package name; libraries (components) use underscores.
        local built="$TARGET_DIR/$target/release/$pkg.wasm"
        [ -f "$built" ] || built="$TARGET_DIR/$target/release/${pkg//-/_}.wasm"
        cp "$built" "$OUT_DIR/$name"
    done
}

version_of() { "$@" 2>/dev/null | head -n 3 || echo "missing: $*"; }

# The toolchain a group is built with: its version and the variables that
# point the build scripts at another compiler, sysroot or runtime.
toolchain() {
    version_of "$@"
    local v
    for v in CC_WASI CXX_WASI WASI_SYSROOT GO NODE; do echo "$v=${!v-}"; done
}

for group in "${groups[@]}"; do
    case "$group" in
        rust)
            check_rust
            ARTIFACTS=()
            for entry in "${RUST_GUESTS[@]}"; do ARTIFACTS+=("${entry%%|*}"); done
            hash=$( (rustc -Vv) | content_hash examples/Cargo.toml examples/Cargo.lock examples/rust examples/hostile examples/http examples/nn)
            build_group rust "$hash" build_rust
            ;;
        c)
            ARTIFACTS=(transform-c.wasm)
            hash=$(toolchain "${CC_WASI:-clang}" --version | content_hash examples/c examples/lib)
            build_group c "$hash" bash "$EX/c/build.sh" "$OUT_DIR/transform-c.wasm"
            ;;
        cpp)
            ARTIFACTS=(transform-cpp.wasm)
            hash=$(toolchain "${CXX_WASI:-clang++}" --version | content_hash examples/cpp examples/lib)
            build_group cpp "$hash" bash "$EX/cpp/build.sh" "$OUT_DIR/transform-cpp.wasm"
            ;;
        go)
            ARTIFACTS=(transform-go.wasm)
            hash=$(toolchain "$(. "$EX/lib/toolchain.sh"; find_go)" version | content_hash examples/go examples/lib)
            build_group go "$hash" bash "$EX/go/build.sh" "$OUT_DIR/transform-go.wasm"
            ;;
        assemblyscript)
            ARTIFACTS=(transform-as.wasm)
            hash=$(toolchain "${NODE:-node}" --version | content_hash examples/assemblyscript examples/lib)
            build_group assemblyscript "$hash" bash "$EX/assemblyscript/build.sh" "$OUT_DIR/transform-as.wasm"
            ;;
        *)
            echo "error: unknown guest group \`$group\` (expected one of: ${ALL_GROUPS[*]})" >&2
            exit 2
            ;;
    esac
done
