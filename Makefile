# Vigil developer commands. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := build

GO ?= go
KAFKA_SH := deploy/kafka/kafka.sh
# Benchmarks: override to narrow, e.g. make bench BENCH=Normalize BENCH_PKGS=./pipeline/...
BENCH ?= .
BENCH_PKGS ?= ./...
BENCHTIME ?= 1s
# Extra go test flags for `make test`, e.g. make test TESTFLAGS='-run TestX -v'
TESTFLAGS ?=

.PHONY: run build test test-fast bench lint fmt kafka-fetch kafka-start kafka-stop kafka-status clean

## run: all stages in one process on an embedded broker, with the demo attack
run:
	$(GO) run ./cmd/vigil dev

## build: the static binary in bin/vigil
build:
	CGO_ENABLED=0 $(GO) build -o bin/vigil ./cmd/vigil

## test: go vet, then every test against a real Kafka if java+mvn exist, else kfake
test:
	bash scripts/test.sh $(TESTFLAGS)

## test-fast: every test on in-process kfake, no Kafka start
test-fast:
	env -u VIGIL_KAFKA_BROKERS VIGIL_KAFKATEST_DOCKER=0 $(GO) test -count=1 ./...

## bench: Go benchmarks, results also in bench.txt (compare runs with benchstat)
bench:
	{ uname -srm; $(GO) version; nproc | sed 's/^/cpus: /'; } | tee bench.txt
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) $(BENCH_PKGS) 2>&1 | tee -a bench.txt

## lint: go vet, gofmt and shell syntax; fails on any finding
lint:
	$(GO) vet ./...
	@files="$$(gofmt -l .)"; \
	if [[ -n "$$files" ]]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	@for f in $(KAFKA_SH) scripts/test.sh .ci/run; do bash -n "$$f" || exit 1; done

fmt:
	gofmt -w .

## kafka-fetch: resolve Apache Kafka's jars from Maven Central into ~/.m2
kafka-fetch:
	bash $(KAFKA_SH) fetch

## kafka-start: a local Apache Kafka for tests; export the address it prints
kafka-start: kafka-fetch
	@addr="$$(bash $(KAFKA_SH) start)"; echo "export VIGIL_KAFKA_BROKERS=$$addr"

## kafka-stop: stop it and remove its data
kafka-stop:
	bash $(KAFKA_SH) stop

kafka-status:
	bash $(KAFKA_SH) status

clean:
	rm -rf bin bench.txt
