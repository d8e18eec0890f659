#!/usr/bin/env bash
# make up: start the local registry and wharfd in the background, and return only once both
# answer. Usage: infra/up.sh [registry|wharfd|all]   (default: all)
# Idempotent: a service whose pid is alive and which answers is left alone.
set -euo pipefail
WHARF_LOG_TAG=up
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# registry_config: the config for this data root and port, rendered from the template.
registry_config() {
    sed -e "s|@REGISTRY_DIR@|$REGISTRY_DIR|g" -e "s|@ADDR@|$REGISTRY_HOSTPORT|g" \
        "$WHARF_REPO/infra/registry/config.yml"
}

# check_port_free [OUR_PID]: the registry port must be free (or held by OUR_PID, the registry
# being restarted); otherwise say how to move to another port.
check_port_free() {
    local listener port suggestion=5055 ours=${1:-}
    listener=$(port_listener "$WHARF_REGISTRY_PORT")
    [[ -z $listener ]] && return 0
    [[ -n $ours && $listener == *"pid=$ours,"* ]] && return 0
    for port in $(seq 5001 5099); do
        if [[ -z $(port_listener "$port") ]]; then suggestion=$port; break; fi
    done
    die "TCP port $WHARF_REGISTRY_PORT, wanted by wharf's registry, is in use by another program:
  $listener
Stop that program, or give wharf another port (it is free now: $suggestion), e.g.
  make up WHARF_REGISTRY_PORT=$suggestion      (or export WHARF_REGISTRY_PORT=$suggestion)
and name that port in /etc/wharf/daemon.json: \"registry-mirrors\": [\"http://127.0.0.1:$suggestion\"]"
}

start_registry() {
    local pid config
    require_cmd docker-registry curl ss
    config=$(registry_config)
    if pid=$(pid_of "$REGISTRY_PIDFILE" docker-registry); then
        if [[ $config == "$(cat "$REGISTRY_CONFIG" 2>/dev/null)" ]]; then
            await registry "$pid" "$REGISTRY_LOG" registry_answers
            log "registry: already running (pid $pid) on http://$REGISTRY_HOSTPORT"
            return
        fi
        check_port_free "$pid"
        log "registry: config changed, restarting it (pid $pid)"
        "$WHARF_REPO/infra/down.sh" registry
    fi
    rm -f "$REGISTRY_PIDFILE"
    check_port_free
    mkdir -p "$REGISTRY_DIR/data"
    printf '%s\n' "$config" | write_if_changed "$REGISTRY_CONFIG" && log "rendered $REGISTRY_CONFIG"
    start_background "$REGISTRY_PIDFILE" "$REGISTRY_LOG" docker-registry serve "$REGISTRY_CONFIG"
    await registry "$STARTED_PID" "$REGISTRY_LOG" registry_answers
    log "registry: started (pid $STARTED_PID) on http://$REGISTRY_HOSTPORT, data in $REGISTRY_DIR/data"
}

start_wharfd() {
    local pid
    [[ -x $WHARFD_BIN ]] || die "$WHARFD_BIN is missing; run 'make setup' first"
    if pid=$(pid_of "$WHARFD_PIDFILE" wharfd); then
        await wharfd "$pid" "$WHARFD_LOG" wharfd_answers
        log "wharfd: already running (pid $pid) on unix://$WHARFD_SOCKET"
        return
    fi
    if wharfd_answers; then
        log "wharfd: a daemon without a pid file answers on unix://$WHARFD_SOCKET; leaving it alone"
        return
    fi
    # wharfd writes (and removes) its own pid file; the data-root lock stops a second copy.
    start_background "" "$WHARFD_LOG" "$WHARFD_BIN"
    await wharfd "$STARTED_PID" "$WHARFD_LOG" wharfd_answers
    log "wharfd: started (pid $STARTED_PID) on unix://$WHARFD_SOCKET, log $WHARFD_LOG"
}

main() {
    require_root
    case "${1:-all}" in
        registry) start_registry ;;
        wharfd) start_wharfd ;;
        all) start_registry; start_wharfd ;;
        *) die "usage: $0 [registry|wharfd|all]" ;;
    esac
}

main "$@"
