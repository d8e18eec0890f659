#!/usr/bin/env bash
# make down: stop wharfd and the local registry (SIGTERM, then SIGKILL after
# WHARF_STOP_TIMEOUT seconds) and remove stale pid files.
# Usage: infra/down.sh [registry|wharfd|all]   (default: all). Idempotent.
set -euo pipefail
WHARF_LOG_TAG=down
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_wharfd() {
    stop wharfd "$WHARFD_PIDFILE" wharfd
    # After a SIGKILL the socket stays behind; nobody serves it any more.
    if [[ -S $WHARFD_SOCKET ]] && ! wharfd_answers; then
        rm -f "$WHARFD_SOCKET"
    fi
    if wharfd_answers; then
        log "note: a wharfd without a pid file still answers on unix://$WHARFD_SOCKET (not started by make up)"
    fi
}

main() {
    require_root
    case "${1:-all}" in
        registry) stop registry "$REGISTRY_PIDFILE" docker-registry ;;
        wharfd) stop_wharfd ;;
        all) stop_wharfd; stop registry "$REGISTRY_PIDFILE" docker-registry ;;
        *) die "usage: $0 [registry|wharfd|all]" ;;
    esac
}

main "$@"
