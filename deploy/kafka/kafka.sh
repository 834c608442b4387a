#!/usr/bin/env bash
# kafka.sh — a real, single-node Apache Kafka (KRaft, broker+controller in one
# JVM) on loopback, for Vigil's integration tests.
#
# Why Maven: the only network these machines have is package registries, and
# Maven Central serves Kafka's jars (not the binary tarball). Resolving
# org.apache.kafka:kafka_2.13 with its runtime dependencies gives exactly the
# jars the tarball's libs/ holds, cached in ~/.m2 so the second run is offline.
#
# Usage:
#   kafka.sh fetch          resolve the jars, write the classpath cache file
#   kafka.sh start [DIR]    format + start a broker, print 127.0.0.1:PORT
#   kafka.sh stop  [DIR]    stop it (TERM, then KILL) and remove DIR
#   kafka.sh status [DIR]   print "running ADDR pid PID" (exit 0) or exit 1
#
# DIR defaults to $VIGIL_KAFKA_DIR or ${TMPDIR:-/tmp}/vigil-kafka. It holds
# kafka.pid, kafka.addr, server.properties, data/ and logs/server.log.
#
# Environment:
#   KAFKA_VERSION        Kafka version to fetch (default 4.4.0, needs Java 17+)
#   VIGIL_KAFKA_CACHE    directory of the classpath cache file
#                        (default ~/.m2/vigil-kafka)
#   VIGIL_KAFKA_HEAP     JVM heap flags (default -Xms256m -Xmx512m)
#   VIGIL_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
SCALA_VERSION="2.13"
# log4j-slf4j-impl binds Kafka's slf4j 1.7 API to log4j2, which kafka-server
# already pulls in; the version matches the log4j-core Kafka 4.4 depends on.
LOG4J_VERSION="${LOG4J_VERSION:-2.25.5}"
M2_DIR="${HOME}/.m2"
CACHE_DIR="${VIGIL_KAFKA_CACHE:-${M2_DIR}/vigil-kafka}"
CP_FILE="${CACHE_DIR}/kafka-${KAFKA_VERSION}.classpath"
DEFAULT_DIR="${VIGIL_KAFKA_DIR:-${TMPDIR:-/tmp}/vigil-kafka}"
HEAP="${VIGIL_KAFKA_HEAP:--Xms256m -Xmx512m}"
START_TIMEOUT="${VIGIL_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
PROG="kafka.sh"
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MARKER=".vigil-kafka"

check_java() {
	need java "install a Java 17+ runtime (apt-get install default-jre-headless)"
	local v
	v="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
	local major="${v%%.*}"
	[[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse java version from: $v"
	((major >= 17)) || die "Kafka ${KAFKA_VERSION} needs Java 17+, found $v"
}

# classpath_ok tells whether the cache file exists and every jar it names is
# still in ~/.m2 (someone may have pruned the repository).
classpath_ok() {
	[[ -s "$CP_FILE" ]] || return 1
	local jar
	local IFS=':'
	for jar in $(cat "$CP_FILE"); do
		[[ -f "$jar" ]] || return 1
	done
	return 0
}

cmd_fetch() {
	if classpath_ok; then
		log "Kafka ${KAFKA_VERSION} classpath cached in ${CP_FILE}"
		return 0
	fi
	need mvn "install Maven (apt-get install maven)"
	check_java
	local tmp
	tmp="$(mktemp -d "${TMPDIR:-/tmp}/vigil-kafka-pom.XXXXXX")"
	FETCH_TMP="$tmp"
	trap 'rm -rf "${FETCH_TMP:-}"' EXIT
	cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.vigil</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${SCALA_VERSION}</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
	mkdir -p "$CACHE_DIR"
	local args=(-B -q -f "$tmp/pom.xml" dependency:build-classpath
		-Dmdep.includeScope=runtime "-Dmdep.outputFile=$tmp/cp.txt")
	log "resolving org.apache.kafka:kafka_${SCALA_VERSION}:${KAFKA_VERSION} with Maven into ${M2_DIR}/repository"
	# Try offline first: a warm ~/.m2 needs no network at all.
	if ! mvn -o "${args[@]}" >"$tmp/mvn.log" 2>&1; then
		if ! mvn "${args[@]}" >"$tmp/mvn.log" 2>&1; then
			cat "$tmp/mvn.log" >&2
			die "Maven could not resolve Kafka ${KAFKA_VERSION} (is Maven Central reachable?)"
		fi
	fi
	[[ -s "$tmp/cp.txt" ]] || die "Maven wrote no classpath"
	grep -q "kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" "$tmp/cp.txt" ||
		die "resolved classpath lacks kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar"
	# Write atomically so a concurrent reader never sees half a file.
	cp "$tmp/cp.txt" "$CP_FILE.tmp.$$"
	mv -f "$CP_FILE.tmp.$$" "$CP_FILE"
	log "Kafka ${KAFKA_VERSION}: $(tr ':' '\n' <"$CP_FILE" | wc -l) jars, classpath in ${CP_FILE}"
}

state_dir() {
	local d="${1:-$DEFAULT_DIR}"
	[[ -n "$d" && "$d" != "/" ]] || die "refusing state directory '$d'"
	# Absolute, so the broker's command line names it the same from any cwd.
	[[ "$d" == /* ]] || d="$PWD/$d"
	printf '%s\n' "${d%/}"
}

# api_versions_ok sends a Kafka ApiVersions v0 request to 127.0.0.1:$1 and
# tells whether the broker answered with correlation id 1 and error code 0.
# A listening socket is not enough: KRaft binds it before the broker has
# caught up with the metadata log and been unfenced, and only then starts
# processing requests.
api_versions_ok() {
	local port="$1" out
	# size=14, api_key=18, api_version=0, correlation_id=1, client_id="vchk"
	out="$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04vchk" >&3
		head -c 10 <&3 | od -An -tx1 | tr -d " \n"
	' "$port" 2>/dev/null)" || return 1
	# bytes 4..7: correlation id, 8..9: error code
	[[ "${out:8:12}" == "000000010000" ]]
}

# our_broker tells whether pid $1 is the broker of state dir $2, so that a
# pid file left behind after a reboot never makes us signal a stranger.
our_broker() {
	pid_alive "$1" || return 1
	[[ -r "/proc/$1/cmdline" ]] || return 0 # no procfs: trust the pid file
	tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$2/server.properties"
}

read_state() {
	local dir="$1"
	PID="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
	ADDR="$(cat "$dir/kafka.addr" 2>/dev/null || true)"
}

cmd_status() {
	local dir
	dir="$(state_dir "${1:-}")"
	read_state "$dir"
	if our_broker "$PID" "$dir" && [[ -n "$ADDR" ]] && api_versions_ok "${ADDR##*:}"; then
		echo "running $ADDR pid $PID dir $dir"
		return 0
	fi
	if our_broker "$PID" "$dir"; then
		echo "starting or unhealthy: pid $PID dir $dir (see $dir/logs/server.log)"
	else
		echo "not running (dir $dir)"
	fi
	return 1
}

write_config() {
	local dir="$1" port="$2" cport="$3"
	cat >"$dir/server.properties" <<EOF
# Generated by deploy/kafka/kafka.sh for tests: single node, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${dir}/data
num.network.threads=2
num.io.threads=4
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.cleaner.backoff.ms=1000
EOF
	cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${dir}/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.controller.name = kafka.controller
logger.controller.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

java_cmd() {
	local dir="$1"
	shift
	# shellcheck disable=SC2086 # HEAP is a list of flags
	java $HEAP -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-XX:TieredStopAtLevel=1 \
		"-Dlog4j2.configurationFile=$dir/log4j2.properties" \
		"-Dkafka.logs.dir=$dir/logs" \
		-cp "$(cat "$CP_FILE")" "$@"
}

# start_once formats storage and starts the JVM on fresh ports. It returns 0
# when the broker answers, 2 when the ports were taken (retry), 1 otherwise.
start_once() {
	local dir="$1" port cport cluster_id pid deadline
	port="$(pick_port)"
	cport="$(pick_port)"
	while [[ "$cport" == "$port" ]]; do cport="$(pick_port)"; done
	rm -rf "${dir:?}/data" "$dir/logs" "$dir/kafka.pid" "$dir/kafka.addr"
	mkdir -p "$dir/data" "$dir/logs"
	write_config "$dir" "$port" "$cport"
	# A KRaft cluster id is 16 random bytes in URL-safe base64 without padding.
	# One starting with '-' reads as an option to the storage tool (Kafka's
	# own Uuid.randomUuid draws again in that case; so do we).
	cluster_id="-"
	while [[ "$cluster_id" == -* ]]; do
		cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
	done
	if ! java_cmd "$dir" kafka.tools.StorageTool format -t "$cluster_id" \
		-c "$dir/server.properties" >"$dir/logs/format.log" 2>&1; then
		cat "$dir/logs/format.log" >&2
		die "formatting KRaft storage in $dir/data failed"
	fi
	# setsid puts the broker in its own session, so it outlives this shell
	# and a Ctrl-C in the terminal that ran start does not reach it. The
	# inner bash writes its own pid and then becomes java by exec, so the
	# pid file names the JVM whether or not setsid had to fork.
	# shellcheck disable=SC2016,SC2086 # $$ is the inner shell's; HEAP is flags
	setsid bash -c 'echo $$ >"$0/kafka.pid"; exec "$@"' "$dir" \
		java $HEAP -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		"-Dlog4j2.configurationFile=$dir/log4j2.properties" \
		"-Dkafka.logs.dir=$dir/logs" \
		-cp "$(cat "$CP_FILE")" kafka.Kafka "$dir/server.properties" \
		</dev/null >"$dir/logs/stdout.log" 2>&1 &
	deadline=$((SECONDS + START_TIMEOUT))
	pid=""
	while [[ -z "$pid" ]] && ((SECONDS < deadline)); do
		pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
		[[ -n "$pid" ]] || sleep 0.05
	done
	[[ -n "$pid" ]] || die "broker process did not start"
	while ((SECONDS < deadline)); do
		if ! pid_alive "$pid"; then
			if grep -qs "Address already in use" "$dir/logs/server.log" "$dir/logs/stdout.log"; then
				log "port $port or $cport was taken meanwhile; retrying"
				return 2
			fi
			log "Kafka exited during start-up; last lines of $dir/logs:"
			tail -n 30 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 2>/dev/null || true
			return 1
		fi
		if api_versions_ok "$port"; then
			echo "127.0.0.1:$port" >"$dir/kafka.addr"
			return 0
		fi
		sleep 0.5
	done
	log "Kafka did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s; last lines of $dir/logs/server.log:"
	tail -n 30 "$dir/logs/server.log" >&2 2>/dev/null || true
	kill_pid "$pid"
	return 1
}

cmd_start() {
	local dir
	dir="$(state_dir "${1:-}")"
	check_java
	classpath_ok || die "Kafka ${KAFKA_VERSION} not fetched; run: $0 fetch"
	read_state "$dir"
	if our_broker "$PID" "$dir" && [[ -n "$ADDR" ]] && api_versions_ok "${ADDR##*:}"; then
		log "already running (pid $PID) in $dir"
		echo "$ADDR"
		return 0
	fi
	if our_broker "$PID" "$dir"; then
		log "stale broker pid $PID in $dir does not answer; stopping it"
		kill_pid "$PID"
	fi
	if [[ -d "$dir" && ! -e "$dir/$MARKER" ]] && [[ -n "$(ls -A "$dir")" ]]; then
		die "$dir exists, is not empty and was not created by kafka.sh; choose another DIR"
	fi
	mkdir -p "$dir"
	touch "$dir/$MARKER"
	local t0=$SECONDS rc attempt
	for attempt in 1 2 3; do
		rc=0
		start_once "$dir" || rc=$?
		case $rc in
		0)
			read_state "$dir"
			log "Kafka ${KAFKA_VERSION} up at $ADDR (pid $PID, dir $dir) after $((SECONDS - t0))s"
			echo "$ADDR"
			return 0
			;;
		2) continue ;;
		*) die "Kafka failed to start (logs in $dir/logs)" ;;
		esac
	done
	die "Kafka failed to start after $attempt attempts (logs in $dir/logs)"
}

cmd_stop() {
	local dir
	dir="$(state_dir "${1:-}")"
	if [[ ! -d "$dir" ]]; then
		log "nothing to stop in $dir"
		return 0
	fi
	[[ -e "$dir/$MARKER" ]] || die "$dir was not created by kafka.sh; not touching it"
	read_state "$dir"
	if our_broker "$PID" "$dir"; then
		local t0=$SECONDS
		kill_pid "$PID"
		log "stopped Kafka pid $PID in $((SECONDS - t0))s"
	fi
	rm -rf "${dir:?}"
	log "removed $dir"
}

main() {
	local cmd="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	fetch) cmd_fetch "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	-h | --help | help | "") usage ;;
	*)
		log "unknown command: $cmd"
		usage
		;;
	esac
}

main "$@"
