#!/usr/bin/env bash
# azurite.sh — Azurite (Microsoft's Azure Storage emulator), blob service
# only, on loopback, for the Azure Blob Storage connector's tests
# (pipeline/connector/blob).
#
# Why npm: Azurite ships as the npm package `azurite`; the machines that run
# the tests reach package registries and have Node.js 20+. The package is
# installed once into a cache directory, so later runs need no network.
#
# Usage:
#   azurite.sh install      npm-install azurite into the cache (if missing)
#   azurite.sh start [DIR]  install if needed, start azurite-blob on a free
#                           127.0.0.1 port with its data in DIR/data, wait
#                           until it answers, print the blob endpoint URL
#                           (http://127.0.0.1:PORT/devstoreaccount1)
#   azurite.sh stop  [DIR]  stop it (TERM, then KILL) and remove DIR
#   azurite.sh status [DIR] print "running URL pid PID" (exit 0) or exit 1
#
# DIR defaults to $VIGIL_AZURITE_DIR or ${TMPDIR:-/tmp}/vigil-azurite. It
# holds azurite.pid, azurite.url, data/ and azurite.log.
#
# The account is Azurite's well-known development account, devstoreaccount1,
# with its public key (see Azurite's README): fine for tests, never for data.
#
# Environment:
#   AZURITE_VERSION            npm version to install (default 3.37.0)
#   VIGIL_AZURITE_CACHE        install prefix (default ~/.cache/vigil/azurite)
#   VIGIL_AZURITE_START_TIMEOUT seconds to wait for it (default 30)
set -euo pipefail

AZURITE_VERSION="${AZURITE_VERSION:-3.37.0}"
CACHE_DIR="${VIGIL_AZURITE_CACHE:-${HOME}/.cache/vigil/azurite}"
BIN="${CACHE_DIR}/node_modules/.bin/azurite-blob"
DEFAULT_DIR="${VIGIL_AZURITE_DIR:-${TMPDIR:-/tmp}/vigil-azurite}"
START_TIMEOUT="${VIGIL_AZURITE_START_TIMEOUT:-30}"
STOP_TIMEOUT=10
PROG="azurite.sh"
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MARKER=".vigil-azurite"
ACCOUNT="devstoreaccount1"

# installed tells whether the cache holds the wanted Azurite version.
installed() {
	[[ -x "$BIN" ]] || return 1
	local pkg="${CACHE_DIR}/node_modules/azurite/package.json"
	[[ -r "$pkg" ]] && grep -q "\"version\": *\"${AZURITE_VERSION}\"" "$pkg"
}

cmd_install() {
	if installed; then
		log "Azurite ${AZURITE_VERSION} cached in ${CACHE_DIR}"
		return 0
	fi
	need node "install Node.js 20+ (apt-get install nodejs npm)"
	need npm "install npm (apt-get install npm)"
	mkdir -p "$CACHE_DIR"
	local t0=$SECONDS
	log "installing azurite@${AZURITE_VERSION} into ${CACHE_DIR} (npm)"
	# --prefix keeps it out of the project and out of the global node
	# modules; no audit/fund round-trips; runtime dependencies only.
	if ! npm install --prefix "$CACHE_DIR" --no-audit --no-fund --omit=dev --loglevel=error \
		"azurite@${AZURITE_VERSION}" >"$CACHE_DIR/npm-install.log" 2>&1; then
		cat "$CACHE_DIR/npm-install.log" >&2
		die "npm could not install azurite@${AZURITE_VERSION} (is the npm registry reachable?)"
	fi
	installed || die "npm finished but $BIN is missing"
	log "installed Azurite ${AZURITE_VERSION} in $((SECONDS - t0))s"
}

state_dir() {
	local d="${1:-$DEFAULT_DIR}"
	[[ -n "$d" && "$d" != "/" ]] || die "refusing state directory '$d'"
	[[ "$d" == /* ]] || d="$PWD/$d"
	printf '%s\n' "${d%/}"
}

# answers tells whether the blob service at URL $1 answers HTTP: an
# unsigned List Containers gets 403 from a running Azurite, which is
# enough to know it serves requests.
answers() {
	local code
	code="$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1?comp=list" 2>/dev/null)" || return 1
	[[ "$code" =~ ^[2-4][0-9][0-9]$ ]]
}

# ours tells whether pid $1 is the Azurite of state dir $2, so that a
# stale pid file never makes us signal another process.
ours() {
	pid_alive "$1" || return 1
	[[ -r "/proc/$1/cmdline" ]] || return 0
	tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$2/data"
}

read_state() {
	PID="$(cat "$1/azurite.pid" 2>/dev/null || true)"
	URL="$(cat "$1/azurite.url" 2>/dev/null || true)"
}

cmd_status() {
	local dir
	dir="$(state_dir "${1:-}")"
	read_state "$dir"
	if ours "$PID" "$dir" && [[ -n "$URL" ]] && answers "$URL"; then
		echo "running $URL pid $PID dir $dir"
		return 0
	fi
	echo "not running (dir $dir)"
	return 1
}

# start_once starts azurite-blob on a fresh port: 0 when it answers, 2
# when the port was taken meanwhile (retry), 1 otherwise.
start_once() {
	local dir="$1" port url pid deadline
	port="$(pick_port)"
	url="http://127.0.0.1:${port}/${ACCOUNT}"
	rm -rf "${dir:?}/data" "$dir/azurite.pid" "$dir/azurite.url" "$dir/azurite.log"
	mkdir -p "$dir/data"
	# setsid: its own session, so it outlives this shell and a Ctrl-C in
	# the terminal does not reach it; the inner bash writes its pid and
	# becomes node by exec. --skipApiVersionCheck: the Go SDK may speak a
	# newer REST API version than this Azurite knows; --loose: ignore
	# headers Azurite does not implement instead of failing the request.
	# shellcheck disable=SC2016 # $$ is the inner shell's
	setsid bash -c 'echo $$ >"$0/azurite.pid"; exec "$@"' "$dir" \
		"$BIN" --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data" \
		--silent --skipApiVersionCheck --loose --disableProductStyleUrl \
		</dev/null >"$dir/azurite.log" 2>&1 &
	deadline=$((SECONDS + START_TIMEOUT))
	pid=""
	while [[ -z "$pid" ]] && ((SECONDS < deadline)); do
		pid="$(cat "$dir/azurite.pid" 2>/dev/null || true)"
		[[ -n "$pid" ]] || sleep 0.05
	done
	[[ -n "$pid" ]] || die "azurite process did not start"
	while ((SECONDS < deadline)); do
		if ! pid_alive "$pid"; then
			if grep -qs "EADDRINUSE" "$dir/azurite.log"; then
				log "port $port was taken meanwhile; retrying"
				return 2
			fi
			log "Azurite exited during start-up:"
			tail -n 30 "$dir/azurite.log" >&2 || true
			return 1
		fi
		if answers "$url"; then
			echo "$url" >"$dir/azurite.url"
			return 0
		fi
		sleep 0.1
	done
	log "Azurite did not answer at $url within ${START_TIMEOUT}s:"
	tail -n 30 "$dir/azurite.log" >&2 || true
	kill_pid "$pid"
	return 1
}

cmd_start() {
	local dir
	dir="$(state_dir "${1:-}")"
	need curl "install curl (apt-get install curl)"
	cmd_install
	read_state "$dir"
	if ours "$PID" "$dir" && [[ -n "$URL" ]] && answers "$URL"; then
		log "already running (pid $PID) in $dir"
		echo "$URL"
		return 0
	fi
	if ours "$PID" "$dir"; then
		log "stale Azurite pid $PID in $dir does not answer; stopping it"
		kill_pid "$PID"
	fi
	if [[ -d "$dir" && ! -e "$dir/$MARKER" ]] && [[ -n "$(ls -A "$dir")" ]]; then
		die "$dir exists, is not empty and was not created by azurite.sh; choose another DIR"
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
			log "Azurite ${AZURITE_VERSION} blob service at $URL (pid $PID, dir $dir) after $((SECONDS - t0))s"
			echo "$URL"
			return 0
			;;
		2) continue ;;
		*) die "Azurite failed to start (log in $dir/azurite.log)" ;;
		esac
	done
	die "Azurite failed to start after $attempt attempts (log in $dir/azurite.log)"
}

cmd_stop() {
	local dir
	dir="$(state_dir "${1:-}")"
	if [[ ! -d "$dir" ]]; then
		log "nothing to stop in $dir"
		return 0
	fi
	[[ -e "$dir/$MARKER" ]] || die "$dir was not created by azurite.sh; not touching it"
	read_state "$dir"
	if ours "$PID" "$dir"; then
		kill_pid "$PID"
		log "stopped Azurite pid $PID"
	fi
	rm -rf "${dir:?}"
	log "removed $dir"
}

main() {
	local cmd="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	install) cmd_install "$@" ;;
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
