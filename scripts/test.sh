#!/usr/bin/env bash
# test.sh — Vigil's test command (`make test`, and CI through .ci/run).
#
# Runs go vet, then the whole test suite against a real Apache Kafka started
# from Maven Central jars by deploy/kafka/kafka.sh when java and mvn are
# installed, else against the in-process kfake broker (pipeline/kafkatest).
#
# Environment:
#   VIGIL_KAFKA_BROKERS       use this running Kafka; start none
#   VIGIL_REQUIRE_REAL_KAFKA  1: fail rather than fall back to kfake
#   VIGIL_TEST_PKGS           packages to test (default ./...)
#   VIGIL_TEST_TIMEOUT        go test -timeout (default 20m)
# Extra arguments are passed to go test (e.g. scripts/test.sh -run TestX -v).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
T0=$SECONDS
KAFKA_SH="$ROOT/deploy/kafka/kafka.sh"
KAFKA_DIR=""
PKGS="${VIGIL_TEST_PKGS:-./...}"
TIMEOUT="${VIGIL_TEST_TIMEOUT:-20m}"

say() { printf '==> %s\n' "$*" >&2; }

require_real() {
	case "${VIGIL_REQUIRE_REAL_KAFKA:-}" in
	1 | true | yes | on) return 0 ;;
	esac
	return 1
}

finish() {
	local rc=$?
	if [[ -n "$KAFKA_DIR" ]]; then
		if ((rc != 0)) && [[ -s "$KAFKA_DIR/logs/server.log" ]]; then
			say "last errors in the Kafka log (before it is removed):"
			grep -E '^\[[^]]*\] (ERROR|FATAL)' "$KAFKA_DIR/logs/server.log" | tail -n 20 >&2 || say "  (none)"
		fi
		say "stopping Kafka"
		bash "$KAFKA_SH" stop "$KAFKA_DIR" || true
	fi
	local d=$((SECONDS - T0))
	if ((rc == 0)); then
		say "PASS in $((d / 60))m$((d % 60))s"
	else
		say "FAIL (exit $rc) after $((d / 60))m$((d % 60))s"
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

say "$(go version)"
if [[ -d "$ROOT/../shared/samples" ]]; then
	say "sample records: $(cd "$ROOT/../shared/samples" && pwd)"
else
	say "sample records: ../shared/samples absent; tests that read them skip"
fi

have() { command -v "$1" >/dev/null 2>&1; }
if [[ -n "${VIGIL_KAFKA_BROKERS:-}" ]]; then
	say "Kafka plan: the running broker at VIGIL_KAFKA_BROKERS=$VIGIL_KAFKA_BROKERS"
elif have java && have mvn; then
	say "Kafka plan: start Apache Kafka from Maven Central (deploy/kafka/kafka.sh) after go vet"
elif require_real; then
	say "Kafka plan: none possible (java or mvn missing) and VIGIL_REQUIRE_REAL_KAFKA=1: will fail"
else
	say "Kafka plan: in-process kfake (java or mvn missing)"
fi

say "go vet $PKGS"
# shellcheck disable=SC2086 # PKGS may list several patterns
go vet $PKGS

# The shipped rule library must lint clean and pass its own fixtures,
# through the same commands a detection engineer runs.
say "vigil rules lint rules/library && vigil rules test rules/library"
go run ./cmd/vigil rules lint rules/library
go run ./cmd/vigil rules test rules/library

# kfake_or_fail falls back to kfake, or fails when a real Kafka is required.
kfake_or_fail() {
	if require_real; then
		say "ERROR: VIGIL_REQUIRE_REAL_KAFKA=1 and $1"
		exit 1
	fi
	unset VIGIL_KAFKA_BROKERS
	say "Kafka: in-process kfake, or testcontainers if a Docker engine answers (pipeline/kafkatest), because $1"
}

if [[ -n "${VIGIL_KAFKA_BROKERS:-}" ]]; then
	say "Kafka: the running broker at VIGIL_KAFKA_BROKERS=$VIGIL_KAFKA_BROKERS"
elif have java && have mvn; then
	t=$SECONDS
	if bash "$KAFKA_SH" fetch; then
		say "fetched Kafka in $((SECONDS - t))s"
		KAFKA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vigil-kafka-test.XXXXXX")"
		t=$SECONDS
		if addr="$(bash "$KAFKA_SH" start "$KAFKA_DIR")"; then
			export VIGIL_KAFKA_BROKERS="$addr"
			say "Kafka: Apache Kafka at $addr (started in $((SECONDS - t))s, logs in $KAFKA_DIR/logs)"
		else
			kfake_or_fail "Kafka failed to start (see messages above)"
		fi
	else
		kfake_or_fail "fetching Kafka with Maven failed (see messages above)"
	fi
else
	missing=""
	have java || missing+=" java"
	have mvn || missing+=" mvn"
	if require_real; then
		say "ERROR: VIGIL_REQUIRE_REAL_KAFKA=1 but not installed:${missing}; install with:"
		say "  apt-get install -y default-jre-headless maven   (Kafka needs Java 17+)"
		say "or point VIGIL_KAFKA_BROKERS at a running Kafka"
		exit 1
	fi
	kfake_or_fail "not installed:${missing} (apt-get install -y default-jre-headless maven for a real Kafka)"
fi

# >>> Azurite for the Azure Blob Storage connector tests (pipeline/connector/blob) >>>
# With npm installed, start Azurite's blob service (deploy/azurite/azurite.sh:
# npm package cached in ~/.cache/vigil/azurite, ~40 s cold, ~3 s warm) and
# export its URL; in CI (VIGIL_REQUIRE_REAL_KAFKA=1) the Azurite tests must
# then run, not skip. A VIGIL_AZURITE_URL already set is used as is.
AZURITE_SH="$ROOT/deploy/azurite/azurite.sh"
AZURITE_DIR=""
stop_azurite() {
	if [[ -n "$AZURITE_DIR" ]]; then
		say "stopping Azurite"
		bash "$AZURITE_SH" stop "$AZURITE_DIR" >/dev/null 2>&1 || true
	fi
}
if [[ -n "${VIGIL_AZURITE_URL:-}" ]]; then
	say "Azurite: the running one at VIGIL_AZURITE_URL=$VIGIL_AZURITE_URL"
elif have npm && have node; then
	require_real && export VIGIL_REQUIRE_AZURITE=1
	AZURITE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vigil-azurite-test.XXXXXX")"
	# Extend the EXIT trap: stop Azurite, then run the previous handler
	# with the exit status it would have seen (set +e, so that status does
	# not end the trap early).
	prev_exit_trap() { eval "set -- $(trap -p EXIT)"; printf '%s' "${3:-}"; }
	trap "rc=\$?; stop_azurite; set +e; (exit \$rc); $(prev_exit_trap)" EXIT
	t=$SECONDS
	if url="$(bash "$AZURITE_SH" start "$AZURITE_DIR")"; then
		export VIGIL_AZURITE_URL="$url"
		say "Azurite: blob service at $url (ready in $((SECONDS - t))s)"
	else
		say "Azurite failed to start (see messages above); its tests will $(require_real && echo fail || echo skip)"
	fi
else
	say "Azurite: npm not installed; the Azure Blob Storage tests skip (apt-get install -y nodejs npm)"
fi
# <<< Azurite <<<

say "go test -count=1 -timeout $TIMEOUT $PKGS $*"
# shellcheck disable=SC2086 # PKGS may list several patterns
go test -count=1 -timeout "$TIMEOUT" "$@" $PKGS
