# The two commands of the README:
#   make demo   the whole story on the embedded engine, no set-up
#   make test   every test, against a private ClickHouse server and the embedded engine
#   make bench  the benchmark of docs/benchmarks.md on a server of its own (BENCH_FLAGS=--huge adds 100M rows)
#   make bench-cluster  the figures of docs/scaling.md on a two-shard cluster of its own
#   make bench-ha  the HA-pair figures of docs/scaling.md (duplicates, failover) on a server of its own
#   make soak   the long fault and load tests of docs/reliability.md (SOAK_DURATION, default 5m of load)
#   make fuzz   each fuzz target for FUZZTIME (default 60s)
SHELL := /bin/bash
GO ?= go

.PHONY: demo test bench bench-cluster bench-ha soak fuzz build deps lint clean

build:
	$(GO) build -o bin/mlwatch ./cmd/mlwatch

deps:
	scripts/deps.sh

demo: deps build
	bin/mlwatch demo

test:
	scripts/test.sh

bench:
	scripts/bench.sh $(BENCH_FLAGS)

bench-cluster:
	scripts/bench-cluster.sh

bench-ha:
	scripts/bench-ha.sh

soak:
	scripts/soak.sh

fuzz:
	scripts/fuzz.sh

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin .mlwatch
