#!/bin/sh
# Installs what autonomic needs on a fresh Debian machine with Rust, idempotently: packages
# already present are skipped, and nothing is fetched from outside Debian's and crates.io's
# registries (hex.pm is not used: the Erlang side depends only on OTP and Debian's erlang-*).
set -eu

packages="erlang-nox erlang-dev erlang-common-test erlang-eunit erlang-dialyzer erlang-proper erlang-proper-dev rebar3"
# The monitor's tests check /metrics with promtool and scrape it with a real Prometheus server.
packages="$packages prometheus"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing$missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
fi

for tool in cargo rustfmt cargo-clippy erl rebar3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup: $tool is missing (Rust comes from rustup, Erlang from Debian)" >&2
        exit 1
    fi
done
