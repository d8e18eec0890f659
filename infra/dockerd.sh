#!/usr/bin/env bash
# make dockerd (and so make test): a Docker engine on this host for the Docker-interop tests,
# which `docker load` archives wharf made (never anything from Docker Hub).
# Usage: infra/dockerd.sh [start|stop]   (default: start)
#
# Start installs Debian's docker.io first if it is missing (dockerd 20.10, its containerd,
# /usr/bin/docker): only the tests need it, so `make setup` (demo hosts, the Vagrant VMs) does
# not. The package would start dockerd with its defaults; a policy-rc.d refuses that during the
# install, and the packaged service is disabled afterwards.
#
# This host also runs wharfd, which owns its bridges and its iptables chains, so dockerd runs
# without any networking of its own: no iptables (nor ip6tables) rules, no change to
# net.ipv4.ip_forward, no docker0 bridge (its containers could only use --network none/host).
# It keeps its default socket (unix:///var/run/docker.sock), pid file (/var/run/docker.pid)
# and data root (/var/lib/docker), and starts its own containerd when none runs; its output goes
# to $WHARF_LOG_DIR/dockerd.log. Start returns once `docker info` answers, or fails after
# WHARF_DOCKERD_TIMEOUT seconds (default 60) showing the log's last lines.
# Idempotent: a dockerd with these flags that answers is reused. A dockerd started some other
# way is someone else's: it is left alone, with a warning when it may touch iptables.
set -euo pipefail
WHARF_LOG_TAG=dockerd
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${WHARF_DOCKERD_TIMEOUT:-60}"
# What keeps dockerd off wharfd's networking; these also tell our dockerd from another one.
FLAGS=(--iptables=false --ip-forward=false --bridge=none)
PACKAGE=docker.io
POLICY_RC=/usr/sbin/policy-rc.d   # asked by invoke-rc.d and deb-systemd-invoke before a start

# The packaged dockerd (docker0 bridge, NAT rules, forwarding on, next to wharfd's bridges and
# chains) must not start from the postinst: for the install, a policy-rc.d refuses `docker`.
write_policy_rc() {
    remove_on_exit "$POLICY_RC"   # also when apt-get fails
    cat >"$POLICY_RC" <<'EOF_POLICY'
#!/bin/sh
# Written by wharf's infra/dockerd.sh for one apt-get install, then removed: the packaged
# dockerd must not start (infra/dockerd.sh starts one without iptables, forwarding or bridge).
for arg in "$@"; do
    case $arg in docker | docker.service | docker.socket) exit 101 ;; esac
done
exit 0
EOF_POLICY
    chmod 0755 "$POLICY_RC"
}

# Nor later (at boot, or when something opens docker.socket); and stop it, in case an
# operator's policy-rc.d let it start during the install.
disable_packaged_service() {
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now docker.socket docker.service >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/docker ]]; then
        /etc/init.d/docker stop >/dev/null 2>&1 || true
        update-rc.d docker disable >/dev/null 2>&1 || true
    fi
    log "disabled the packaged docker service (this script starts dockerd with wharf's flags)"
}

install_docker() {
    local status wrote_policy=0
    status=$(dpkg-query -W -f='${db:Status-Status}' "$PACKAGE" 2>/dev/null || true)
    [[ $status == installed ]] && return 0
    log "installing: $PACKAGE"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if [[ ! -e $POLICY_RC ]]; then   # an existing one is the operator's and stays as it is
        write_policy_rc
        wrote_policy=1
    fi
    apt-get install -y -q --no-install-recommends "$PACKAGE"
    if ((wrote_policy)); then
        rm -f "$POLICY_RC"
    fi
    disable_packaged_service
}

docker_answers() {
    [[ -S $DOCKERD_SOCKET ]] || return 1
    # -H: whatever DOCKER_HOST or the CLI's context say, ask this socket.
    timeout 10 docker -H "unix://$DOCKERD_SOCKET" info --format '{{.ID}}' >/dev/null 2>&1
}

# has_our_flags PID: true when dockerd PID was started with every one of FLAGS.
has_our_flags() {
    local cmdline flag
    cmdline=" $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) " || return 1
    for flag in "${FLAGS[@]}"; do
        [[ $cmdline == *" $flag "* ]] || return 1
    done
}

# await_docker PID LOG: wait (up to TIMEOUT) until dockerd PID answers `docker info`.
await_docker() {
    local WHARF_START_TIMEOUT=$TIMEOUT   # await's bound, for this call only
    await dockerd "$1" "$2" docker_answers
}

start_dockerd() {
    local pid help flags=("${FLAGS[@]}")
    install_docker
    require_cmd dockerd docker timeout
    if pid=$(pid_of "$DOCKERD_PIDFILE" dockerd); then
        if has_our_flags "$pid"; then
            await_docker "$pid" "$DOCKERD_LOG"
            log "already running (pid $pid) on unix://$DOCKERD_SOCKET"
            return
        fi
        wait_until "$TIMEOUT" docker_answers \
            || die "a dockerd not started by wharf runs (pid $pid) but does not answer on" \
                   "unix://$DOCKERD_SOCKET within ${TIMEOUT}s; stop it, then run 'make dockerd'"
        log "warning: a dockerd not started by wharf runs (pid $pid) and answers on" \
            "unix://$DOCKERD_SOCKET; using it. Without ${FLAGS[*]} it may add iptables rules," \
            "a docker0 bridge and turn on forwarding next to wharfd's. To have wharf's instead:" \
            "stop it, then run 'make dockerd'"
        return
    fi
    if docker_answers; then
        log "a Docker engine without $DOCKERD_PIDFILE answers on unix://$DOCKERD_SOCKET;" \
            "leaving it alone"
        return
    fi
    # --ip6tables exists (experimental, off by default) from Docker 20.10 on; say it where known.
    help=$(dockerd --help 2>&1 || true)   # not piped to grep -q: pipefail and SIGPIPE
    if [[ $help == *--ip6tables* ]]; then
        flags+=(--ip6tables=false)
    fi
    start_background "" "$DOCKERD_LOG" dockerd "${flags[@]}"
    await_docker "$STARTED_PID" "$DOCKERD_LOG"
    log "started (pid $STARTED_PID) on unix://$DOCKERD_SOCKET with ${flags[*]}, log $DOCKERD_LOG"
}

stop_dockerd() {
    local pid
    if pid=$(pid_of "$DOCKERD_PIDFILE" dockerd) && ! has_our_flags "$pid"; then
        log "the dockerd running (pid $pid) was not started by wharf; leaving it alone"
        return
    fi
    stop dockerd "$DOCKERD_PIDFILE" dockerd
}

main() {
    require_root
    case "${1:-start}" in
        start) start_dockerd ;;
        stop) stop_dockerd ;;
        *) die "usage: $0 [start|stop]" ;;
    esac
}

main "$@"
