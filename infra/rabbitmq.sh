#!/usr/bin/env bash
# Make sure a RabbitMQ broker runs on this host (the gateway's tests need one): if
# `rabbitmqctl status` fails, start `rabbitmq-server -detached` and wait up to
# WHARF_RABBITMQ_TIMEOUT seconds (default 60) for it to answer.
#
# Then make the control plane's own vhost and users (not guest): vhost `wharf`, user
# `wharf-gateway` for gateways and `wharf-node` for daemons, with passwords generated once and
# kept in /etc/wharf/amqp.env (0600) as the URLs each program reads:
#   WHARF_GATEWAY_AMQP_URL=amqp://wharf-gateway:…@HOST:5672/wharf
#   WHARF_AMQP_URL=amqp://wharf-node:…@HOST:5672/wharf
# HOST is WHARF_AMQP_HOST (default 127.0.0.1; a cluster's daemons use the bridge address).
# Idempotent: existing users keep their passwords (re-applied, so a reset broker heals).
set -euo pipefail
WHARF_LOG_TAG=rabbitmq
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${WHARF_RABBITMQ_TIMEOUT:-60}"
AMQP_ENV="${WHARF_AMQP_ENV:-/etc/wharf/amqp.env}"
AMQP_HOST="${WHARF_AMQP_HOST:-127.0.0.1}"
VHOST=wharf

broker_answers() {
    rabbitmqctl status >/dev/null 2>&1
}

# password_of USER: the password recorded for USER in $AMQP_ENV, or a new random one.
password_of() {
    local user=$1 recorded
    if [[ -r $AMQP_ENV ]]; then
        recorded=$(grep -oP "amqp://${user}:\K[^@]+" "$AMQP_ENV" | head -n1 || true)
        if [[ -n $recorded ]]; then
            printf '%s' "$recorded"
            return
        fi
    fi
    head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32
}

ensure_user() {
    local user=$1 password=$2
    if ! rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$user"; then
        rabbitmqctl -q add_user "$user" "$password" >/dev/null
    else
        rabbitmqctl -q change_password "$user" "$password" >/dev/null
    fi
    # Each program declares the exchanges and queues it uses, so both need configure rights;
    # the vhost holds nothing else.
    rabbitmqctl -q set_permissions -p "$VHOST" "$user" '.*' '.*' '.*' >/dev/null
}

ensure_accounts() {
    rabbitmqctl -q list_vhosts | grep -qx "$VHOST" || rabbitmqctl -q add_vhost "$VHOST" >/dev/null
    local gateway_password node_password
    gateway_password=$(password_of wharf-gateway)
    node_password=$(password_of wharf-node)
    ensure_user wharf-gateway "$gateway_password"
    ensure_user wharf-node "$node_password"
    mkdir -p "$(dirname "$AMQP_ENV")"
    local tmp="$AMQP_ENV.tmp.$$"
    (umask 077; cat >"$tmp" <<EOF_ENV
# written by infra/rabbitmq.sh: the control plane's RabbitMQ accounts (vhost $VHOST)
WHARF_GATEWAY_AMQP_URL=amqp://wharf-gateway:${gateway_password}@${AMQP_HOST}:5672/${VHOST}
WHARF_AMQP_URL=amqp://wharf-node:${node_password}@${AMQP_HOST}:5672/${VHOST}
EOF_ENV
    )
    mv -f "$tmp" "$AMQP_ENV"
    log "vhost $VHOST with users wharf-gateway and wharf-node; URLs in $AMQP_ENV"
}

main() {
    require_root
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
