# autonomic: the two commands a fresh machine needs are `make demo` and `make test`.
# Each installs what is missing first (scripts/setup.sh), so either works on a clean clone.

.PHONY: all setup native build demo demo-governor soak test test-rust test-erlang test-prometheus bench release clean

all: build

setup:
	@sh scripts/setup.sh

native: setup
	@sh scripts/build_native.sh

build: native
	rebar3 compile

## The main job: a local 5-node cluster, the jobs workload, the loop and chaos (one fault every
## 5 s for 2 minutes), then the chaos report, SLO compliance, the audit and the ledgers.
## DEMO_FLAGS passes flags: make demo DEMO_FLAGS="--duration 60 --interval 2000 --seed 7".
demo: build
	scripts/chaos_demo.escript $(DEMO_FLAGS)

## The governor scenario on one node (the first demo).
demo-governor: build
	scripts/demo.escript

## Not in CI: 10 minutes at one fault every 2 s.
soak: build
	scripts/chaos_demo.escript --duration 600 --interval 2000 --report soak_report.json $(DEMO_FLAGS)

## Everything CI runs, in this order.
test: setup test-rust test-erlang test-prometheus

test-rust:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo test

test-erlang: native
	rebar3 eunit
	rebar3 ct
	rebar3 xref
	rebar3 dialyzer

## The alert rules, and a real /metrics scrape of a node running the workload, the loop, and
## the SLO tracker, checked by promtool.
test-prometheus: native
	promtool check rules priv/prometheus/alerts.yml
	scripts/metrics_scrape.escript _build/metrics_scrape.txt
	promtool check metrics < _build/metrics_scrape.txt

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
