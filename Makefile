# The two commands of the README:
#   make demo   the whole story on the embedded engine, no set-up
#   make test   every test, against a private ClickHouse server and the embedded engine
SHELL := /bin/bash
GO ?= go

.PHONY: demo test build deps lint clean

build:
	$(GO) build -o bin/mlwatch ./cmd/mlwatch

deps:
	scripts/deps.sh

demo: deps build
	bin/mlwatch demo

test:
	scripts/test.sh

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin .mlwatch
