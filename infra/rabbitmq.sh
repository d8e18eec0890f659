#!/usr/bin/env bash
# Make sure a RabbitMQ broker runs on this host (the gateway's tests need one): if
# `rabbitmqctl status` fails, start `rabbitmq-server -detached` and wait up to
# WHARF_RABBITMQ_TIMEOUT seconds (default 60) for it to answer.
#
# Then make the control plane's own vhost and accounts (not guest; the rights are in
# infra/amqp-accounts.sh): vhost `wharf`, user `wharf-gateway` for gateways and
# `wharf-node-<NODE>` for this host's node (NODE: WHARF_NODE_NAME, default the hostname, as
# wharfd's default), with passwords generated once and kept in /etc/wharf/amqp.env (0600) as the
# URLs each program reads:
#   WHARF_GATEWAY_AMQP_URL=amqp://wharf-gateway:…@HOST:5672/wharf
#   WHARF_AMQP_URL=amqp://wharf-node-NODE:…@HOST:5672/wharf
# HOST is WHARF_AMQP_HOST (default 127.0.0.1; a cluster's daemons use the bridge address).
# The one account all nodes shared before (`wharf-node`) is deleted.
#
#   infra/rabbitmq.sh node NAME [ENV_FILE]   only the account of node NAME (on vhost
#       WHARF_AMQP_VHOST, default wharf), its URL written to ENV_FILE (0600; default
#       /etc/wharf/nodes/NAME.amqp.env) as WHARF_AMQP_URL=…; the broker must be running.
# Idempotent: existing users keep their passwords (re-applied, so a reset broker heals).
set -euo pipefail
WHARF_LOG_TAG=rabbitmq
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/amqp-accounts.sh
source "$(dirname "${BASH_SOURCE[0]}")/amqp-accounts.sh"

TIMEOUT="${WHARF_RABBITMQ_TIMEOUT:-60}"
AMQP_ENV="${WHARF_AMQP_ENV:-/etc/wharf/amqp.env}"
AMQP_HOST="${WHARF_AMQP_HOST:-127.0.0.1}"
VHOST="${WHARF_AMQP_VHOST:-wharf}"
LOCAL_NODE="${WHARF_NODE_NAME:-$(hostname)}"

broker_answers() {
    rabbitmqctl status >/dev/null 2>&1
}

# password_of USER FILE…: the password recorded for USER in the first FILE that has one, or a
# new random one (a user is global to the broker: every vhost's URL must carry the same one).
password_of() {
    local user=$1 file recorded
    shift
    for file in "$@"; do
        [[ -r $file ]] || continue
        recorded=$(grep -oP "amqp://${user}:\\K[^@]+" "$file" | head -n1 || true)
        if [[ -n $recorded ]]; then
            printf '%s' "$recorded"
            return
        fi
    done
    amqp_new_password
}

url_of() {  # url_of USER PASSWORD
    printf 'amqp://%s:%s@%s:5672/%s' "$1" "$2" "$AMQP_HOST" "$VHOST"
}

drop_shared_account() {
    if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx wharf-node; then
        rabbitmqctl -q delete_user wharf-node >/dev/null
        log "deleted the account all nodes shared (wharf-node): each node has its own now"
    fi
}

ensure_accounts() {
    amqp_ensure_vhost "$VHOST"
    amqp_valid_node "$LOCAL_NODE" || die "this host's node name '$LOCAL_NODE' is not valid; set WHARF_NODE_NAME"
    local gateway_password node_password node_user="$AMQP_NODE_USER_PREFIX$LOCAL_NODE"
    gateway_password=$(password_of wharf-gateway "$AMQP_ENV")
    node_password=$(password_of "$node_user" "$AMQP_ENV" "/etc/wharf/nodes/$LOCAL_NODE.amqp.env")
    amqp_gateway_account "$VHOST" "$gateway_password"
    amqp_node_account "$VHOST" "$LOCAL_NODE" "$node_password"
    drop_shared_account
    write_private "$AMQP_ENV" <<EOF_ENV
# written by infra/rabbitmq.sh: the control plane's RabbitMQ accounts (vhost $VHOST)
WHARF_GATEWAY_AMQP_URL=$(url_of wharf-gateway "$gateway_password")
WHARF_AMQP_URL=$(url_of "$node_user" "$node_password")
EOF_ENV
    log "vhost $VHOST with users wharf-gateway and $node_user; URLs in $AMQP_ENV"
}

ensure_node() {  # ensure_node NAME [ENV_FILE]
    local node=$1 file=${2:-/etc/wharf/nodes/$1.amqp.env} password user
    amqp_valid_node "$node" || die "invalid node name: $node"
    broker_answers || die "RabbitMQ does not answer; run 'make rabbitmq' first"
    user="$AMQP_NODE_USER_PREFIX$node"
    password=$(password_of "$user" "$file" "/etc/wharf/nodes/$node.amqp.env" "$AMQP_ENV")
    amqp_ensure_vhost "$VHOST"
    amqp_node_account "$VHOST" "$node" "$password"
    write_private "$file" <<EOF_ENV
# written by infra/rabbitmq.sh node $node: node $node's own RabbitMQ account (vhost $VHOST)
WHARF_AMQP_URL=$(url_of "$user" "$password")
EOF_ENV
    log "node $node: user $user on vhost $VHOST; URL in $file"
}

main() {
    require_root
    if [[ ${1:-} == node ]]; then
        (($# == 2 || $# == 3)) || die "usage: $0 node NAME [ENV_FILE]"
        require_cmd rabbitmqctl
        ensure_node "$2" "${3:-}"
        return
    fi
    (($# == 0)) || die "usage: $0 | $0 node NAME [ENV_FILE]"
    require_cmd rabbitmq-server rabbitmqctl
    if broker_answers; then
        log "already running"
        ensure_accounts
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
    ensure_accounts
}

main "$@"
