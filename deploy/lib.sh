# lib.sh — helpers shared by deploy/kafka/kafka.sh and deploy/azurite/azurite.sh,
# the scripts that run a real dependency on loopback for the tests. Source it
# after setting PROG (the script's name, for messages) and STOP_TIMEOUT.

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found in PATH; $2"
}

# port_free tells whether nothing accepts connections on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port prints a random port in 20000–59999 that nothing listens on.
# The service binds it a moment later; start retries with new ports if that
# races.
pick_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if port_free "$p"; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

# pid_alive tells whether pid $1 runs. A zombie counts as dead: the service
# is reparented to PID 1 once start returns, and a container's PID 1 may
# never reap it.
pid_alive() {
	[[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0 # no procfs: trust kill -0
	stat="${stat##*) }"
	[[ "${stat:0:1}" != "Z" ]]
}

# kill_pid sends TERM so the service shuts down cleanly, then KILL after
# STOP_TIMEOUT seconds.
kill_pid() {
	local pid="$1" i
	pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	log "pid $pid still alive after ${STOP_TIMEOUT}s; sending KILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	die "could not stop pid $pid"
}

# usage prints the script's header comment.
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}
