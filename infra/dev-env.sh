#!/usr/bin/env bash
# The .env file of docker-compose.dev.yml (beside it, 0600): a random password for each RabbitMQ
# account of the stack (the gateway's and each node's own), made once. The stack has no default
# passwords, so `docker compose up` refuses to start until this ran. Idempotent: a variable the
# file (or the environment) already sets is kept.
#
#   infra/dev-env.sh [ENV_FILE]      (default: .env in the repository)
set -euo pipefail
WHARF_LOG_TAG=dev-env
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/amqp-accounts.sh
source "$(dirname "${BASH_SOURCE[0]}")/amqp-accounts.sh"

ENV_FILE="${1:-$WHARF_REPO/.env}"
VARS=(WHARF_AMQP_GATEWAY_PASSWORD WHARF_AMQP_NODE1_PASSWORD WHARF_AMQP_NODE2_PASSWORD)

main() {
    local var added=()
    (umask 077; touch "$ENV_FILE")
    chmod 0600 "$ENV_FILE"
    for var in "${VARS[@]}"; do
        if grep -q "^$var=" "$ENV_FILE" || [[ -n ${!var:-} ]]; then
            continue
        fi
        printf '%s=%s\n' "$var" "$(amqp_new_password)" >>"$ENV_FILE"
        added+=("$var")
    done
    if ((${#added[@]})); then
        log "wrote ${added[*]} to $ENV_FILE"
    else
        log "$ENV_FILE already has every password"
    fi
}

main "$@"
