# shellcheck shell=bash
# Shared helpers for the tools/ entry points. Source it; do not run it.
# Sets KVMLET_ROOT (the repo root) and KVMLET_BUILD (the build tree, absolute).

KVMLET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KVMLET_BUILD=${KVMLET_BUILD_DIR:-build}
[[ $KVMLET_BUILD == /* ]] || KVMLET_BUILD=$KVMLET_ROOT/$KVMLET_BUILD
KVMLET_BUILD_TYPE_DEFAULT=RelWithDebInfo

# The script's name, for messages.
prog=tools/${0##*/}

die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "$prog" "$*"
}

# kvmlet_build [cmake args...]: configure (first time, or when args are given) and build.
# Reconfiguring without args would reset nothing, so it is skipped: `cmake --build` reruns
# CMake by itself when a CMakeLists.txt changed.
kvmlet_build() {
    command -v cmake >/dev/null || die "cmake not found: run tools/setup"
    if [[ ! -f $KVMLET_BUILD/CMakeCache.txt || $# -gt 0 ]]; then
        local type_arg=()
        # Only on first configure, so a later `-DCMAKE_BUILD_TYPE=Debug` sticks.
        [[ -f $KVMLET_BUILD/CMakeCache.txt ]] || type_arg=("-DCMAKE_BUILD_TYPE=$KVMLET_BUILD_TYPE_DEFAULT")
        cmake -S "$KVMLET_ROOT" -B "$KVMLET_BUILD" "${type_arg[@]}" "$@" \
            || die "CMake configure failed in $KVMLET_BUILD"
    fi
    cmake --build "$KVMLET_BUILD" -j "$(nproc)" || die "build failed in $KVMLET_BUILD"
}
