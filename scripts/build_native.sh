#!/bin/sh
# Builds the Rust workspace in release mode and installs its artifacts into the owning
# application's priv/ directory, where code:priv_dir/1 finds them in `rebar3 shell`, in Common
# Test and in a release. Called by the rebar3 pre-compile hook of apps/autonomic, and by make.
#
# A file is replaced only when it changed, and always by `rm -f` then copy: overwriting a .so in
# place that a running VM has mapped crashes that VM; unlinking it first keeps the old inode alive.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
priv=$root/apps/autonomic/priv

cargo build --release --manifest-path "$root/Cargo.toml" >&2

mkdir -p "$priv"
install_artifact() {
    src=$1
    dst=$2
    if [ ! -f "$src" ]; then
        echo "build_native: $src was not built" >&2
        exit 1
    fi
    if ! cmp -s "$src" "$dst"; then
        rm -f "$dst"
        cp "$src" "$dst"
        echo "build_native: installed $dst" >&2
    fi
}

install_artifact "$target/release/libautonomic_nif.so" "$priv/libautonomic_nif.so"
install_artifact "$target/release/autonomic_planner" "$priv/autonomic_planner"
