#!/usr/bin/env bash
# Make sure a RabbitMQ broker runs on this host (the gateway's tests need one): if
# `rabbitmqctl status` fails, start `rabbitmq-server -detached` and wait up to
# WHARF_RABBITMQ_TIMEOUT seconds (default 60) for it to answer.
set -euo pipefail
WHARF_LOG_TAG=rabbitmq
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${WHARF_RABBITMQ_TIMEOUT:-60}"

broker_answers() {
    rabbitmqctl status >/dev/null 2>&1
}

main() {
    require_root
    require_cmd rabbitmq-server rabbitmqctl
    if broker_answers; then
        log "already running"
        return
    fi
    log "starting rabbitmq-server -detached (up to ${TIMEOUT}s)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    local deadline=$(( SECONDS + TIMEOUT ))
    until broker_answers; do
        if (( SECONDS >= deadline )); then
            show_log_tail "/var/log/rabbitmq/rabbit@$(hostname -s).log"
            die "RabbitMQ did not answer 'rabbitmqctl status' within ${TIMEOUT}s"
        fi
        sleep 1
    done
    log "started"
}

main "$@"
