#!/usr/bin/env bash
# Command of the `rabbitmq` service in docker-compose.dev.yml (official rabbitmq image; this
# file is mounted read-only). Starts the broker through the image's own docker-entrypoint.sh,
# then makes the control plane's accounts with the same rabbitmqctl commands as
# infra/rabbitmq.sh: vhost `wharf`, users `wharf-gateway` and `wharf-node` with configure,
# write and read rights on it (passwords from WHARF_AMQP_GATEWAY_PASSWORD and
# WHARF_AMQP_NODE_PASSWORD). Only then it touches $READY, which the healthcheck requires, so
# the gateway and the daemons (depends_on: service_healthy) never see a broker without them.
# Re-applied at every start, so a changed password takes effect with a restart.
set -euo pipefail

READY=/tmp/wharf-accounts-ready
VHOST=wharf
log() { printf 'rabbitmq-init: %s\n' "$*" >&2; }

: "${WHARF_AMQP_GATEWAY_PASSWORD:?set WHARF_AMQP_GATEWAY_PASSWORD}"
: "${WHARF_AMQP_NODE_PASSWORD:?set WHARF_AMQP_NODE_PASSWORD}"

rm -f "$READY"
docker-entrypoint.sh rabbitmq-server &
server=$!
# The broker is this script's child: pass a stop on to it and wait for its clean shutdown.
trap 'kill -TERM "$server" 2>/dev/null || true' TERM INT

until rabbitmqctl -q status >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { wait "$server" || exit $?; exit 1; }
    sleep 1
done
rabbitmqctl -q await_startup >/dev/null

ensure_user() {
    local user=$1 password=$2
    if ! rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$user"; then
        rabbitmqctl -q add_user "$user" "$password" >/dev/null
    else
        rabbitmqctl -q change_password "$user" "$password" >/dev/null
    fi
    rabbitmqctl -q set_permissions -p "$VHOST" "$user" '.*' '.*' '.*' >/dev/null
}

rabbitmqctl -q list_vhosts | grep -qx "$VHOST" || rabbitmqctl -q add_vhost "$VHOST" >/dev/null
ensure_user wharf-gateway "$WHARF_AMQP_GATEWAY_PASSWORD"
ensure_user wharf-node "$WHARF_AMQP_NODE_PASSWORD"
touch "$READY"
log "vhost $VHOST with users wharf-gateway and wharf-node"

# `wait` returns early when the trap fires; wait again for the broker's exit status.
status=0
wait "$server" || status=$?
if kill -0 "$server" 2>/dev/null; then
    status=0
    wait "$server" || status=$?
fi
exit "$status"
