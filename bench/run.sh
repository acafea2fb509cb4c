#!/bin/sh
# Runs the benchmarks (`make bench`): every bench/*_bench.erl module's main/0, or only those named
# as arguments (`sh bench/run.sh governor_bench`). They print side-by-side figures; they assert
# nothing. Helper modules in bench/ and the test models they reuse are compiled alongside.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/out
mkdir -p "$out"
erlc -o "$out" apps/*/test/*_model.erl bench/*.erl
if [ $# -gt 0 ]; then
    benches="$*"
else
    benches=$(for f in bench/*_bench.erl; do basename "$f" .erl; done)
fi
for b in $benches; do
    echo "==== $b"
    # +P: some benchmarks spawn hundreds of thousands of processes.
    erl -noshell +P 2000000 -pa "$out" -pa _build/default/lib/*/ebin \
        -eval "$b:main(), halt()."
done
