#!/usr/bin/env bash
# Command of the `rabbitmq` service in docker-compose.dev.yml (rabbitmq.Dockerfile beside this
# file: Debian's rabbitmq-server, run as user rabbitmq; this file is mounted read-only). Starts
# the broker ($RABBITMQ_SERVER, logging to standard output), then makes the control plane's
# accounts with the same functions as infra/rabbitmq.sh (infra/amqp-accounts.sh, mounted
# beside it): vhost `wharf`, user `wharf-gateway` (password
# WHARF_AMQP_GATEWAY_PASSWORD) and one `wharf-node-<name>` per entry of WHARF_AMQP_NODE_ACCOUNTS
# ("node1=password node2=password"). Only then it touches $READY, which the healthcheck requires, so
# the gateway and the daemons (depends_on: service_healthy) never see a broker without them.
# Re-applied at every start, so a changed password takes effect with a restart.
set -euo pipefail

READY=/tmp/wharf-accounts-ready
VHOST=wharf
log() { printf 'rabbitmq-init: %s\n' "$*" >&2; }
# shellcheck source=infra/amqp-accounts.sh
source /usr/local/lib/wharf-amqp-accounts.sh

: "${WHARF_AMQP_GATEWAY_PASSWORD:?set WHARF_AMQP_GATEWAY_PASSWORD}"
: "${WHARF_AMQP_NODE_ACCOUNTS:?set WHARF_AMQP_NODE_ACCOUNTS (node1=password node2=password)}"

RABBITMQ_SERVER=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}

rm -f "$READY"
"$RABBITMQ_SERVER" &
server=$!
# The broker is this script's child: pass a stop on to it and wait for its clean shutdown.
trap 'kill -TERM "$server" 2>/dev/null || true' TERM INT

until rabbitmqctl -q status >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { wait "$server" || exit $?; exit 1; }
    sleep 1
done
rabbitmqctl -q await_startup >/dev/null

amqp_ensure_vhost "$VHOST"
amqp_gateway_account "$VHOST" "$WHARF_AMQP_GATEWAY_PASSWORD"
for entry in $WHARF_AMQP_NODE_ACCOUNTS; do
    [[ $entry == ?*=?* ]] || { log "WHARF_AMQP_NODE_ACCOUNTS: '$entry' is not name=password"; exit 1; }
    amqp_node_account "$VHOST" "${entry%%=*}" "${entry#*=}"
done
touch "$READY"
log "vhost $VHOST with users wharf-gateway and one per node ($AMQP_NODE_USER_PREFIX*)"

# `wait` returns early when the trap fires; wait again for the broker's exit status.
status=0
wait "$server" || status=$?
if kill -0 "$server" 2>/dev/null; then
    status=0
    wait "$server" || status=$?
fi
exit "$status"
