#!/bin/sh
# Runs the benchmarks (`make bench`). They print side-by-side figures; they assert nothing.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/out
mkdir -p "$out"
erlc -o "$out" apps/autonomic/test/governor_model.erl bench/*.erl
# +P: the memory figure for gen_statem spawns 100,000 processes.
erl -noshell +P 2000000 -pa "$out" -pa _build/default/lib/*/ebin \
    -eval 'governor_bench:main(), halt().'
