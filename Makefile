# autonomic: the two commands a fresh machine needs are `make demo` and `make test`.
# Each installs what is missing first (scripts/setup.sh), so either works on a clean clone.

.PHONY: all setup native build demo test test-rust test-erlang bench release clean

all: build

setup:
	@sh scripts/setup.sh

native: setup
	@sh scripts/build_native.sh

build: native
	rebar3 compile

## The main job: a node running autonomic plays the governor scenario.
demo: build
	scripts/demo.escript

## Everything CI runs, in this order.
test: setup test-rust test-erlang

test-rust:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo test

test-erlang: native
	rebar3 eunit
	rebar3 ct
	rebar3 xref
	rebar3 dialyzer

## Benchmarks print side-by-side figures; they are never timed assertions.
bench: build
	sh bench/run.sh

## A self-contained release tarball (ERTS included) in _build/prod/rel/autonomic/.
release: native
	rebar3 as prod tar

clean:
	rebar3 clean
	rm -rf _build/test/logs bench/out
	rm -f apps/autonomic/priv/*.so
