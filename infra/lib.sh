# shellcheck shell=bash
# shellcheck disable=SC2034  # the names below are used by the scripts that source this file
# Shared settings and helpers for the infra/ scripts. Sourced, never run.
#
# Every path and port comes from one place (here), so `make` targets and standalone script
# runs agree. The WHARF_* names that wharfd itself reads (WHARF_DATA_ROOT, WHARF_RUN_DIR) are
# exported so the daemon started by up.sh uses the same directories as these scripts.

WHARF_REPO="${WHARF_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export WHARF_DATA_ROOT="${WHARF_DATA_ROOT:-/var/lib/wharf}"
export WHARF_RUN_DIR="${WHARF_RUN_DIR:-/run/wharf}"
WHARF_LOG_DIR="${WHARF_LOG_DIR:-/var/log/wharf}"
WHARF_REGISTRY_PORT="${WHARF_REGISTRY_PORT:-5000}"
WHARF_CONFIG_FILE="${WHARF_CONFIG_FILE:-/etc/wharf/daemon.json}"
WHARF_IMAGE_CACHE="${WHARF_IMAGE_CACHE:-$WHARF_REPO/.cache/images}"
WHARF_START_TIMEOUT="${WHARF_START_TIMEOUT:-30}"   # seconds for a service to answer
WHARF_STOP_TIMEOUT="${WHARF_STOP_TIMEOUT:-10}"     # seconds between SIGTERM and SIGKILL

REGISTRY_HOSTPORT="127.0.0.1:$WHARF_REGISTRY_PORT"
REGISTRY_DIR="$WHARF_DATA_ROOT/registry"
REGISTRY_CONFIG="$REGISTRY_DIR/config.yml"
REGISTRY_PIDFILE="$WHARF_RUN_DIR/registry.pid"
REGISTRY_LOG="$WHARF_LOG_DIR/registry.log"
WHARFD_BIN="$WHARF_REPO/.venv/bin/wharfd"
WHARFD_PIDFILE="$WHARF_RUN_DIR/wharfd.pid"     # written by wharfd itself
WHARFD_SOCKET="$WHARF_RUN_DIR/wharfd.sock"
WHARFD_LOG="$WHARF_LOG_DIR/wharfd.log"
# The Docker engine `make test` starts for the interop tests (infra/dockerd.sh): dockerd's own
# default socket and pid file, so the docker CLI finds it and a second dockerd refuses to start.
DOCKERD_SOCKET=/var/run/docker.sock
DOCKERD_PIDFILE=/var/run/docker.pid            # written by dockerd itself
DOCKERD_LOG="$WHARF_LOG_DIR/dockerd.log"

# The tag in each message says which script spoke; set by the sourcing script.
WHARF_LOG_TAG="${WHARF_LOG_TAG:-wharf}"

log() { printf '%s: %s\n' "$WHARF_LOG_TAG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$WHARF_LOG_TAG" "$*" >&2; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages, mounts and binds under /run, /var)"
}

require_cmd() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is not installed; run 'make setup' first"
    done
}

# is_alive PID: true while PID runs. A zombie counts as dead: it has exited, and an init that
# reaps slowly (or a container's PID 1 that never does) must not make us wait for it.
is_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }   # the state follows the last ')' (the command name may hold spaces)
    [[ ${stat%% *} != Z ]]
}

# pid_of PIDFILE NAME: print the pid recorded in PIDFILE if that process is alive and its
# command line mentions NAME (guards against a recycled pid); return 1 otherwise.
pid_of() {
    local pidfile=$1 name=$2 pid
    [[ -r $pidfile ]] || return 1
    read -r pid <"$pidfile" || [[ -n $pid ]] || return 1   # dockerd writes no final newline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    is_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name" || return 1
    printf '%s\n' "$pid"
}

registry_answers() {
    curl -sf -o /dev/null --max-time 2 "http://$REGISTRY_HOSTPORT/v2/"
}

wharfd_answers() {
    [[ -S $WHARFD_SOCKET ]] || return 1
    [[ $(curl -sf --max-time 2 --unix-socket "$WHARFD_SOCKET" http://d/_ping 2>/dev/null) == OK ]]
}

# port_listener PORT: print the listening socket line(s) for TCP PORT, if any.
port_listener() {
    ss -Hltnp "sport = :$1" 2>/dev/null
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds or SECONDS have passed.
wait_until() {
    local ticks=$(( $1 * 10 )); shift
    until "$@"; do
        (( ticks-- > 0 )) || return 1
        sleep 0.1
    done
}

# show_log_tail FILE: the last lines of a service log, to explain a failure.
show_log_tail() {
    [[ -f $1 ]] || return 0
    printf '%s: ---- last lines of %s ----\n' "$WHARF_LOG_TAG" "$1" >&2
    tail -n 25 "$1" >&2
    printf '%s: ----\n' "$WHARF_LOG_TAG" >&2
}

# write_if_changed FILE: atomically replace FILE with stdin unless the content is the same.
# Returns 0 when FILE changed, 1 when it was already up to date.
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    chmod 0644 "$tmp"
    sync "$tmp" 2>/dev/null || true
    mv -f "$tmp" "$file"
}

# write_private FILE: stdin to FILE, 0600 whatever the umask, atomically (a file of secrets:
# broker and database URLs with their passwords).
write_private() {
    local file=$1 tmp
    mkdir -p "$(dirname "$file")"
    tmp="$file.tmp.$$"
    (umask 077; cat >"$tmp")
    mv -f "$tmp" "$file"
}

# umount_under DIR: lazily unmount everything mounted at or below DIR, deepest first
# (a failed debootstrap can leave proc/sys mounted in its target).
umount_under() {
    local dir mnt
    dir=$(realpath -m "$1")
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts \
        | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

# remove_on_exit PATH...: delete PATH (recursively, never crossing into a mount) when the
# script exits, however it exits. One EXIT trap serves every caller, so helpers do not
# overwrite each other's traps.
WHARF_CLEANUP=()
remove_on_exit() {
    WHARF_CLEANUP+=("$@")
    trap _wharf_cleanup EXIT
}
_wharf_cleanup() {
    local path
    for path in "${WHARF_CLEANUP[@]}"; do
        [[ -e $path ]] || continue
        umount_under "$path"
        rm -rf --one-file-system -- "$path"
    done
}

# start_background PIDFILE LOG CMD...: run CMD detached (own session, stdin from /dev/null,
# output appended to LOG). If PIDFILE is given, record the pid there.
start_background() {
    local pidfile=$1 logfile=$2; shift 2
    mkdir -p "$WHARF_RUN_DIR" "$WHARF_LOG_DIR"
    printf '\n==== %s: starting %s\n' "$(date -Is)" "$*" >>"$logfile"
    # setsid: leave make's process group, so Ctrl-C on make does not kill the service.
    nohup setsid "$@" >>"$logfile" 2>&1 </dev/null &
    STARTED_PID=$!
    if [[ -n $pidfile ]]; then
        printf '%s\n' "$STARTED_PID" >"$pidfile.tmp"
        mv -f "$pidfile.tmp" "$pidfile"
    fi
}

# await SERVICE PID LOG CHECK...: wait until CHECK succeeds; fail early if PID dies.
await() {
    local service=$1 pid=$2 logfile=$3; shift 3
    local deadline=$(( SECONDS + WHARF_START_TIMEOUT ))
    until "$@"; do
        if ! is_alive "$pid"; then
            show_log_tail "$logfile"
            die "$service (pid $pid) exited during start-up; see $logfile"
        fi
        if (( SECONDS >= deadline )); then
            show_log_tail "$logfile"
            die "$service (pid $pid) did not answer within ${WHARF_START_TIMEOUT}s; see $logfile"
        fi
        sleep 0.1
    done
}

_gone() { ! is_alive "$1"; }

# stop SERVICE PIDFILE NAME
stop() {
    local service=$1 pidfile=$2 name=$3 pid
    if ! pid=$(pid_of "$pidfile" "$name"); then
        if [[ -e $pidfile ]]; then
            rm -f "$pidfile"
            log "$service: not running (removed stale $pidfile)"
        else
            log "$service: not running"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$WHARF_STOP_TIMEOUT" _gone "$pid"; then
        log "$service (pid $pid) ignored SIGTERM for ${WHARF_STOP_TIMEOUT}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 _gone "$pid" || die "$service (pid $pid) survived SIGKILL"
    fi
    rm -f "$pidfile"
    log "$service: stopped (pid $pid)"
}
