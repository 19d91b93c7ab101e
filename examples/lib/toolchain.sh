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
