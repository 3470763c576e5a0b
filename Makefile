# Targets that need PostgreSQL run under scripts/with-db.sh, which sets
# DATABASE_URL: as given, else the server on 127.0.0.1:5432, else a throwaway
# cluster from the installed PostgreSQL binaries. `make help` lists targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO ?= go
# Stamped into the binary as main.version and main.commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Fuzz targets as package:FuzzName; `make test` runs each for FUZZTIME.
FUZZ ?= webhook:FuzzVerifyAndParse policy:FuzzEvaluate policy:FuzzNormalize appeals:FuzzAuthenticate
FUZZTIME ?= 10s
# Set by test/race; empty for the plain run.
RACE ?=
BENCH ?= .
BENCHFLAGS ?=
# Extra flags of bench/intake, e.g. -policy heavy=bench/heavy -n 10000.
BENCHINTAKE ?=
# Listed as served for Go 1.26 in the package index; prints "2026.2.2 (0.8.2)".
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help
help: ## list the targets
	@awk -F ':.*## ' '/^[a-zA-Z0-9_\/-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/moderator, stamped with the git version and commit
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/moderator ./cmd/moderator

.PHONY: run
run: build ## run the service locally against a local PostgreSQL (starter config, dry run)
	MODERATOR_BIN=bin/moderator scripts/run.sh

.PHONY: test
test: ## go vet, every test, the rules' examples and brief fuzzing, against a real PostgreSQL
	scripts/with-db.sh $(MAKE) test/steps

.PHONY: test/race
test/race: ## the same as test, with the race detector
	scripts/with-db.sh $(MAKE) test/steps RACE=-race

# test/steps expects DATABASE_URL from with-db.sh (the tests fall back to
# 127.0.0.1:5432 without it); it is not listed by help.
.PHONY: test/steps
test/steps:
	$(GO) vet ./...
	$(GO) test $(RACE) -count=1 ./...
	$(GO) run $(RACE) ./cmd/moderator rules test rules
	scripts/fuzz.sh $(RACE) $(FUZZTIME) $(FUZZ)

.PHONY: fuzz
fuzz: FUZZTIME = 5m
fuzz: ## fuzz each target of FUZZ longer (FUZZTIME=5m each by default)
	scripts/with-db.sh scripts/fuzz.sh $(FUZZTIME) $(FUZZ)

.PHONY: bench
bench: ## run every benchmark with allocations (BENCH=regexp, BENCHFLAGS=-count=6)
	scripts/with-db.sh $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCHFLAGS) ./...

.PHONY: bench/intake
bench/intake: build ## moderator's intake vs a minimal durable intake, same load, with ratios (BENCHINTAKE='-policy heavy=DIR')
	$(GO) build -o bin/floor ./cmd/loadgen/floor
	$(GO) build -o bin/loadgen ./cmd/loadgen
	$(GO) build -o bin/benchintake ./cmd/loadgen/benchintake
	scripts/with-db.sh bin/benchintake -bin bin $(BENCHINTAKE)

.PHONY: lint
lint: ## go vet, gofmt, staticcheck, and shellcheck when installed
	$(GO) vet ./...
	@files=$$(find . \( -path ./.data -o -path ./bin -o -path ./.git \) -prune -o -name '*.go' -print0 | xargs -0 -r gofmt -l); \
	if [[ -n $$files ]]; then printf 'gofmt: not formatted:\n%s\n' "$$files" >&2; exit 1; fi
	$(GO) run $(STATICCHECK) ./...
	@if command -v shellcheck >/dev/null; then shellcheck -x scripts/*.sh .ci/run; \
	else echo "lint: shellcheck is not installed; the shell scripts were not checked"; fi

.PHONY: db/start
db/start: ## start the persistent dev cluster in .data/postgres and leave it running
	scripts/db.sh start

.PHONY: db/stop
db/stop: ## stop the dev cluster started by db/start
	scripts/db.sh stop

.PHONY: clean
clean: ## remove bin/ (keeps the dev database in .data/)
	rm -rf bin
