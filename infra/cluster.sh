#!/usr/bin/env bash
# make cluster-up NODES=3 / make cluster-down: a local multi-host cluster on one machine
# (docs/cluster.md).
#
# Usage: infra/cluster.sh up [NODES] | down | status
#
# BROKERS (WHARF_CLUSTER_BROKERS, default 1): with more than one, the control plane runs on a
#       RabbitMQ cluster of that many brokers (infra/brokers.sh: 127.0.0.1:5701…, quorum
#       queues) instead of the system's broker; the gateway and every node get all their URLs.
#       Changing it needs a `down` first.
# GATEWAYS (WHARF_CLUSTER_GATEWAYS, default 1): with more than one, that many gateways serve
#       the cluster, on ports $WHARF_CLUSTER_GATEWAY_PORT, +1, …, sharing their records in
#       PostgreSQL (infra/postgres.sh; database $WHARF_CLUSTER_DB, default wharf_cluster,
#       dropped at `down`). Changing it needs a `down` first.
#
# up    RabbitMQ (with the control plane's own vhost and users), the registry, a gateway on
#       127.0.0.1:$WHARF_CLUSTER_GATEWAY_PORT and NODES daemons. Each daemon lives in its own
#       network namespace (wharf-nodeN) with its own address on the bridge $BRIDGE
#       ($NET.1 is the host, node N is $NET.(10+N)), its own data root, run dir and cgroup
#       parent, and listens on its unix socket and on tcp://ADDRESS:2376 with mutual TLS
#       (certificates in $CLUSTER_ETC/tls). RabbitMQ and the registry listen on loopback only,
#       so a small forwarder (infra/cluster/forward.py) carries $NET.1:5672 and the registry
#       port to them. The gateway serves HTTPS with the cluster's server certificate. Writes
#       WHARF_GATEWAY=https://…, WHARF_GATEWAY_CACERT=… and WHARF_TOKEN_FILE=… (the token stays in
#       its 0600 file, never in an environment or argv) to .wharf/cluster.env in the checkout.
#       Idempotent: what runs is left alone; nodes above NODES are stopped.
# down  removes the cluster's containers, stops daemons, gateway and forwarder, deletes the
#       namespaces, veths, bridge and the cluster's RabbitMQ queues. Images stay in
#       $CLUSTER_ROOT (PURGE=1 removes them too).
set -euo pipefail
WHARF_LOG_TAG=cluster
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/amqp-accounts.sh
source "$(dirname "${BASH_SOURCE[0]}")/amqp-accounts.sh"

NET="${WHARF_CLUSTER_NET:-10.88.0}"              # a /24; .1 is the host
BRIDGE="${WHARF_CLUSTER_BRIDGE:-wharfc0}"
GATEWAY_PORT="${WHARF_CLUSTER_GATEWAY_PORT:-8480}"
CLUSTER_ROOT="${WHARF_CLUSTER_ROOT:-/var/lib/wharf-cluster}"
CLUSTER_RUN="${WHARF_CLUSTER_RUN:-/run/wharf-cluster}"
CLUSTER_ETC="${WHARF_CLUSTER_ETC:-/etc/wharf/cluster}"
CLUSTER_LOG="$WHARF_LOG_DIR/cluster"
ENV_FILE="${WHARF_CLUSTER_ENV_FILE:-$WHARF_REPO/.wharf/cluster.env}"
AMQP_ENV="${WHARF_AMQP_ENV:-/etc/wharf/amqp.env}"
VHOST="${WHARF_CLUSTER_VHOST:-wharf}"            # another vhost keeps a second cluster apart
PREFIX="${WHARF_CLUSTER_PREFIX:-wharf-}"         # namespaces and cgroup parents: ${PREFIX}nodeN
VETH="${WHARF_CLUSTER_VETH:-wcn}"                # host ends of the veths: ${VETH}N
GATEWAY_ID="${WHARF_CLUSTER_GATEWAY_ID:-gw-cluster}"
HOST_ADDR="$NET.1"
GATEWAY_URL="https://127.0.0.1:$GATEWAY_PORT"
GATEWAY_BIN="$WHARF_REPO/.venv/bin/wharf-gateway"
WHARF_BIN="$WHARF_REPO/.venv/bin/wharf"
TLS_DIR="$CLUSTER_ETC/tls"
TOKENS_FILE="$CLUSTER_ETC/gateway-tokens"
TOKEN_FILE="$CLUSTER_ETC/token"
MAX_NODES=50
BROKERS="${WHARF_CLUSTER_BROKERS:-1}"
BROKERS_PORT="${WHARF_BROKERS_PORT:-5700}"
BROKERS_MARK="$CLUSTER_RUN/brokers"  # how many brokers the running cluster was started with
export WHARF_BROKERS_ENV="${WHARF_BROKERS_ENV:-$CLUSTER_ETC/brokers.env}"
GATEWAYS="${WHARF_CLUSTER_GATEWAYS:-1}"
GATEWAYS_MARK="$CLUSTER_RUN/gateways"  # how many gateways the running cluster was started with
CLUSTER_DB="${WHARF_CLUSTER_DB:-wharf_cluster}"
DB_ENV="$CLUSTER_ETC/gateway-db.env"

node_addr() { printf '%s.%s' "$NET" $(( 10 + $1 )); }
# gateway N (1…GATEWAYS): gateway 1 keeps the names a one-gateway cluster always had
gateway_suffix() { (( $1 == 1 )) || printf '%s' "$1"; }
gateway_port() { printf '%s' $(( GATEWAY_PORT + $1 - 1 )); }
gateway_id() { printf "%s" "$GATEWAY_ID$( (( $1 == 1 )) || printf -- "-%s" "$1")"; }
node_ns() { printf '%snode%s' "$PREFIX" "$1"; }
node_veth() { printf '%s%s' "$VETH" "$1"; }
node_run() { printf '%s/node%s' "$CLUSTER_RUN" "$1"; }
node_sock() { printf '%s/wharfd.sock' "$(node_run "$1")"; }
node_pidfile() { printf '%s/node%s.pid' "$CLUSTER_RUN" "$1"; }

amqp_url() {  # amqp_url VAR [FILE]: that URL from FILE (default $AMQP_ENV), on this cluster's vhost
    local url file=${2:-$AMQP_ENV}
    url=$(grep -oP "^$1=\\K.*" "$file") || die "$file has no $1; run 'make rabbitmq'"
    printf '%s/%s' "${url%/*}" "$VHOST"
}

ensure_vhost() {  # the gateway's account of rabbitmq.sh, also on a vhost of our own
    [[ $VHOST == wharf ]] && return
    amqp_ensure_vhost "$VHOST"
    amqp_gateway_rights "$VHOST"
}

# node_amqp_url I: node I's own account (infra/rabbitmq.sh node; its password kept in
# $CLUSTER_ETC/nodeI.amqp.env, 0600, and the same as /etc/wharf/nodes/nodeI.amqp.env's if that
# exists: a user is global to the broker), as a URL on this cluster's vhost and bridge address.
node_amqp_url() {
    local file=$CLUSTER_ETC/node$1.amqp.env url
    if (( BROKERS > 1 )); then  # one URL per broker, at the bridge address (the forwarder's)
        file=$CLUSTER_ETC/node$1.brokers.env
        WHARF_AMQP_VHOST=$VHOST WHARF_AMQP_HOST=$HOST_ADDR "$WHARF_REPO/infra/brokers.sh" node \
            "node$1" "$file" >&2 || die "could not make node$1's account on the brokers"
        grep -oP '^WHARF_AMQP_URL=\K.*' "$file"
        return
    fi
    WHARF_AMQP_VHOST=$VHOST "$WHARF_REPO/infra/rabbitmq.sh" node "node$1" "$file" \
        || die "could not make node$1's RabbitMQ account (infra/rabbitmq.sh node node$1)"
    url=$(amqp_url WHARF_AMQP_URL "$file")
    printf '%s' "${url/@127.0.0.1:/@$HOST_ADDR:}"
}

node_answers() {
    [[ $(curl -sf --max-time 2 --unix-socket "$(node_sock "$1")" http://d/_ping 2>/dev/null) == OK ]]
}

gateway_answers() {  # gateway_answers [N]
    curl -sf --max-time 2 --cacert "$TLS_DIR/ca.pem" \
        "https://127.0.0.1:$(gateway_port "${1:-1}")/healthz" 2>/dev/null \
        | grep -q '"broker":"connected"'
}

ready_nodes() {
    # the header from a file descriptor: the token never shows in curl's argv
    curl -sf --max-time 2 --cacert "$TLS_DIR/ca.pem" \
        -H @<(printf 'Authorization: Bearer %s\n' "$(cat "$TOKEN_FILE")") "$GATEWAY_URL/v1/nodes" \
        | python3 -c 'import json,sys; print(sum(n["Status"] == "ready" for n in json.load(sys.stdin)))'
}

enough_ready() {
    local ready
    ready=$(ready_nodes 2>/dev/null) || return 1
    (( ready >= WANT_READY ))
}

# --- up ---------------------------------------------------------------------------------------

ensure_bridge() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$HOST_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
}

ensure_forwarder() {
    local pidfile="$CLUSTER_RUN/forward.pid" pid
    if pid=$(pid_of "$pidfile" forward.py); then
        return
    fi
    local amqp=("$HOST_ADDR:5672=127.0.0.1:5672") i
    if (( BROKERS > 1 )); then
        amqp=()
        for (( i = 1; i <= BROKERS; i++ )); do
            amqp+=("$HOST_ADDR:$(( BROKERS_PORT + i ))=127.0.0.1:$(( BROKERS_PORT + i ))")
        done
    fi
    start_background "$pidfile" "$CLUSTER_LOG/forward.log" python3 \
        "$WHARF_REPO/infra/cluster/forward.py" "${amqp[@]}" \
        "$HOST_ADDR:$WHARF_REGISTRY_PORT=127.0.0.1:$WHARF_REGISTRY_PORT"
    await forwarder "$STARTED_PID" "$CLUSTER_LOG/forward.log" \
        bash -c "exec 3<>/dev/tcp/$HOST_ADDR/$WHARF_REGISTRY_PORT" 2>/dev/null
}

ensure_certs() {
    local hosts="localhost,127.0.0.1,$HOST_ADDR" i
    for (( i = 1; i <= MAX_NODES; i++ )); do hosts+=",$(node_addr "$i")"; done
    CERT_DIR="$TLS_DIR" CERT_HOSTS="$hosts" "$WHARF_REPO/infra/certs.sh"
}

ensure_token() {
    mkdir -p "$CLUSTER_ETC"
    if [[ -s $TOKEN_FILE ]] && grep -q '^cluster ' "$TOKENS_FILE" 2>/dev/null; then
        return
    fi
    (umask 077; "$GATEWAY_BIN" token create cluster --scope admin --tokens-file "$TOKENS_FILE" >"$TOKEN_FILE")
    log "made a gateway token for this cluster ($TOKEN_FILE)"
}

# ensure_database: PostgreSQL and this cluster's database, for several gateways
ensure_database() {
    WHARF_DB_ENV="$DB_ENV" WHARF_DB_NAME="$CLUSTER_DB" "$WHARF_REPO/infra/postgres.sh"
}

ensure_gateway() {  # ensure_gateway N
    local n=$1 pidfile log port name suffix pid db=()
    suffix=$(gateway_suffix "$n") port=$(gateway_port "$n") name="gateway$suffix"
    pidfile="$CLUSTER_RUN/$name.pid" log="$CLUSTER_LOG/$name.log"
    if pid=$(pid_of "$pidfile" wharf-gateway); then
        await "$name" "$pid" "$log" gateway_answers "$n"
        return
    fi
    [[ -z $(port_listener "$port") ]] || die "TCP port $port is in use:
  $(port_listener "$port")
Choose another: make cluster-up WHARF_CLUSTER_GATEWAY_PORT=8481"
    if (( GATEWAYS > 1 )); then  # in the environment: a password has no place in argv
        db=("$(grep -m1 '^WHARF_GATEWAY_DATABASE_URL=' "$DB_ENV")") \
            || die "$DB_ENV has no WHARF_GATEWAY_DATABASE_URL"
    fi
    local url
    if (( BROKERS > 1 )); then
        url=$(grep -oP '^WHARF_GATEWAY_AMQP_URL=\K.*' "$WHARF_BROKERS_ENV") \
            || die "$WHARF_BROKERS_ENV has no WHARF_GATEWAY_AMQP_URL"
    else
        url=$(amqp_url WHARF_GATEWAY_AMQP_URL)
    fi
    start_background "$pidfile" "$log" env \
        "WHARF_GATEWAY_AMQP_URL=$url" "${db[@]}" "$GATEWAY_BIN" serve \
        --listen "127.0.0.1:$port" --state-dir "$CLUSTER_ROOT/$name" \
        --tokens-file "$TOKENS_FILE" --gateway-id "$(gateway_id "$n")" \
        --tls-cert "$TLS_DIR/server-cert.pem" --tls-key "$TLS_DIR/server-key.pem" \
        --node-tls-ca "$TLS_DIR/ca.pem" --node-tls-cert "$TLS_DIR/cert.pem" \
        --node-tls-key "$TLS_DIR/key.pem"
    await "$name" "$STARTED_PID" "$log" gateway_answers "$n"
}

ensure_netns() {
    local i=$1 ns veth addr
    ns=$(node_ns "$i") veth=$(node_veth "$i") addr=$(node_addr "$i")
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr replace "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route replace default via "$HOST_ADDR"
}

# The host's registry at the node's own 127.0.0.1:$WHARF_REGISTRY_PORT, so that an image named
# 127.0.0.1:5000/me/app:1 (built and pushed on the host) is pulled by that name on every node.
ensure_node_registry() {
    local i=$1 pidfile pid
    pidfile="$CLUSTER_RUN/node$i-registry.pid"
    if pid=$(pid_of "$pidfile" forward.py); then
        return
    fi
    start_background "$pidfile" "$CLUSTER_LOG/node$i-registry.log" \
        nsenter "--net=/run/netns/$(node_ns "$i")" python3 "$WHARF_REPO/infra/cluster/forward.py" \
        "127.0.0.1:$WHARF_REGISTRY_PORT=$HOST_ADDR:$WHARF_REGISTRY_PORT"
    await "node$i registry forwarder" "$STARTED_PID" "$CLUSTER_LOG/node$i-registry.log" \
        nsenter "--net=/run/netns/$(node_ns "$i")" \
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$WHARF_REGISTRY_PORT" 2>/dev/null
}

ensure_node() {
    local i=$1 pidfile pid node_url
    pidfile=$(node_pidfile "$i")
    ensure_netns "$i"
    ensure_node_registry "$i"
    if pid=$(pid_of "$pidfile" wharfd); then
        await "node$i" "$pid" "$CLUSTER_LOG/node$i.log" node_answers "$i"
        return
    fi
    node_url=$(node_amqp_url "$i")
    mkdir -p "$(node_run "$i")"
    # nsenter switches only the network namespace (ip netns exec would also make a private
    # mount namespace, and a restarted daemon could not see its containers' mounts).
    start_background "$pidfile" "$CLUSTER_LOG/node$i.log" \
        nsenter "--net=/run/netns/$(node_ns "$i")" env "WHARF_AMQP_URL=$node_url" \
        "WHARF_NODE_NAME=node$i" "WHARF_NODE_LABELS={\"node\": \"node$i\"}" \
        "WHARF_CGROUP_PARENT=$(node_ns "$i")" \
        "$WHARFD_BIN" --data-root "$CLUSTER_ROOT/node$i" --run-dir "$(node_run "$i")" \
        -H "unix://$(node_sock "$i")" -H "tcp://$(node_addr "$i"):2376" --tlsverify \
        --tlscacert "$TLS_DIR/ca.pem" --tlscert "$TLS_DIR/server-cert.pem" \
        --tlskey "$TLS_DIR/server-key.pem" --config-file "$CLUSTER_ETC/no-daemon.json" \
        --registry-mirror "http://$HOST_ADDR:$WHARF_REGISTRY_PORT" \
        --insecure-registry "$NET.0/24" --insecure-registry 127.0.0.0/8
    await "node$i" "$STARTED_PID" "$CLUSTER_LOG/node$i.log" node_answers "$i"
}

write_env() {
    mkdir -p "$(dirname "$ENV_FILE")"
    {
        printf '# written by make cluster-up: set -a; . %s\n' "${ENV_FILE#"$WHARF_REPO"/}"
        printf 'WHARF_GATEWAY=%s\n' "$GATEWAY_URL"
        printf 'WHARF_GATEWAY_CACERT=%s\n' "$TLS_DIR/ca.pem"
        printf 'WHARF_TOKEN_FILE=%s\n' "$TOKEN_FILE"
        if (( GATEWAYS > 1 )); then  # the others, for a client that fails over
            printf '# the other gateways: %s\n' "$(for (( i = 2; i <= GATEWAYS; i++ )); do
                printf 'https://127.0.0.1:%s ' "$(gateway_port "$i")"; done)"
        fi
    } | (umask 077; write_if_changed "$ENV_FILE") || true
    chmod 0600 "$ENV_FILE"
}

up() {
    local nodes=${1:-3} i
    [[ $nodes =~ ^[0-9]+$ ]] && (( nodes >= 1 && nodes <= MAX_NODES )) \
        || die "NODES must be a number from 1 to $MAX_NODES (got '$nodes')"
    require_root
    require_cmd ip nsenter curl openssl python3
    [[ -x $WHARFD_BIN && -x $GATEWAY_BIN ]] || die "wharf is not installed; run 'make setup'"
    [[ $BROKERS =~ ^[1-7]$ ]] || die "BROKERS must be a number from 1 to 7 (got '$BROKERS')"
    [[ $GATEWAYS =~ ^[1-9]$ ]] || die "GATEWAYS must be a number from 1 to 9 (got '$GATEWAYS')"
    mkdir -p "$CLUSTER_RUN" "$CLUSTER_LOG" "$CLUSTER_ROOT" "$CLUSTER_ETC"
    if [[ -e $BROKERS_MARK && $(cat "$BROKERS_MARK") != "$BROKERS" ]]; then
        die "this cluster runs with BROKERS=$(cat "$BROKERS_MARK"); 'make cluster-down' first"
    fi
    if [[ -e $GATEWAYS_MARK && $(cat "$GATEWAYS_MARK") != "$GATEWAYS" ]]; then
        die "this cluster runs with GATEWAYS=$(cat "$GATEWAYS_MARK"); 'make cluster-down' first"
    fi
    echo "$BROKERS" >"$BROKERS_MARK"
    echo "$GATEWAYS" >"$GATEWAYS_MARK"
    if (( BROKERS > 1 )); then
        WHARF_AMQP_VHOST=$VHOST "$WHARF_REPO/infra/brokers.sh" up "$BROKERS"
    else
        "$WHARF_REPO/infra/rabbitmq.sh"
        ensure_vhost
    fi
    "$WHARF_REPO/infra/up.sh" registry
    ensure_bridge
    ensure_forwarder
    ensure_certs
    ensure_token
    (( GATEWAYS == 1 )) || ensure_database
    for (( i = 1; i <= GATEWAYS; i++ )); do ensure_gateway "$i"; done
    for (( i = 1; i <= nodes; i++ )); do ensure_node "$i"; done
    for (( i = nodes + 1; i <= MAX_NODES; i++ )); do
        [[ -e $(node_pidfile "$i") ]] || ip netns list | grep -qw "^$(node_ns "$i")" || continue
        down_node "$i"
    done
    WANT_READY=$nodes
    wait_until "$WHARF_START_TIMEOUT" enough_ready \
        || die "the gateway does not see $nodes ready nodes; see $CLUSTER_LOG/"
    write_env
    log "$nodes nodes ready"
    log "  gateway: $GATEWAY_URL (CA $TLS_DIR/ca.pem)   token file: $TOKEN_FILE   (both in ${ENV_FILE#"$WHARF_REPO"/})"
    for (( i = 2; i <= GATEWAYS; i++ )); do
        log "  gateway $i: https://127.0.0.1:$(gateway_port "$i") (the same records: PostgreSQL database $CLUSTER_DB)"
    done
    for (( i = 1; i <= nodes; i++ )); do
        log "  node$i: tcp://$(node_addr "$i"):2376 (mutual TLS, certs in $TLS_DIR), unix://$(node_sock "$i")"
    done
    log "use it: set -a; . ${ENV_FILE#"$WHARF_REPO"/}; set +a; wharf node ls"
}

# --- down -------------------------------------------------------------------------------------

down_node() {
    local i=$1 ids
    if node_answers "$i"; then
        ids=$("$WHARF_BIN" -H "unix://$(node_sock "$i")" ps -aq 2>/dev/null || true)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086  # one argument per id
            "$WHARF_BIN" -H "unix://$(node_sock "$i")" rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    stop "node$i" "$(node_pidfile "$i")" wharfd
    stop "node$i registry forwarder" "$CLUSTER_RUN/node$i-registry.pid" forward.py
    rm -f "$(node_sock "$i")"
    ip link del "$(node_veth "$i")" 2>/dev/null || true
    ip netns del "$(node_ns "$i")" 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/"$(node_ns "$i")" /sys/fs/cgroup/"$(node_ns "$i")" 2>/dev/null || true
    if (( BROKERS == 1 )) && command -v rabbitmqctl >/dev/null \
        && rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$VHOST"; then
        rabbitmqctl -q delete_queue -p "$VHOST" "wharf.cmd.node$i" >/dev/null 2>&1 || true
        rabbitmqctl -q delete_queue -p "$VHOST" "wharf.bcast.node$i" >/dev/null 2>&1 || true
    fi
}

# drop_unused_node_accounts: the node accounts this cluster made that no vhost grants anything
# any more (a second cluster's vhost is gone; the default cluster's accounts stay for its next up).
drop_unused_node_accounts() {
    local file user
    for file in "$CLUSTER_ETC"/node*.amqp.env; do
        [[ -e $file ]] || continue
        user="$AMQP_NODE_USER_PREFIX$(basename "$file" .amqp.env)"
        if [[ -z $(rabbitmqctl -q list_user_permissions "$user" 2>/dev/null | tail -n +2) ]]; then
            rabbitmqctl -q delete_user "$user" >/dev/null 2>&1 || true
            rm -f "$file"
        fi
    done
}

down() {
    local i
    require_root
    [[ -e $BROKERS_MARK ]] && BROKERS=$(cat "$BROKERS_MARK")  # what it was started with
    [[ -e $GATEWAYS_MARK ]] && GATEWAYS=$(cat "$GATEWAYS_MARK")
    for (( i = 1; i <= MAX_NODES; i++ )); do
        [[ -e $(node_pidfile "$i") ]] || ip netns list 2>/dev/null | grep -qw "^$(node_ns "$i")" \
            || continue
        down_node "$i"
    done
    for (( i = 1; i <= 9; i++ )); do
        [[ -e $CLUSTER_RUN/gateway$(gateway_suffix "$i").pid ]] || continue
        stop "gateway $i" "$CLUSTER_RUN/gateway$(gateway_suffix "$i").pid" wharf-gateway
    done
    if (( GATEWAYS > 1 )) && command -v pg_lsclusters >/dev/null; then
        runuser -u postgres -- psql -X -q -c "DROP DATABASE IF EXISTS \"$CLUSTER_DB\" WITH (FORCE)" \
            >/dev/null 2>&1 || true
    fi
    stop forwarder "$CLUSTER_RUN/forward.pid" forward.py
    ip link del "$BRIDGE" 2>/dev/null || true
    if (( BROKERS > 1 )); then  # the brokers are the cluster's own: they go with it
        "$WHARF_REPO/infra/brokers.sh" down
        rm -f "$CLUSTER_ETC"/node*.brokers.env
    elif command -v rabbitmqctl >/dev/null && rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$VHOST"; then
        if [[ $VHOST == wharf ]]; then
            for (( i = 1; i <= GATEWAYS; i++ )); do
                rabbitmqctl -q delete_queue -p wharf "wharf.gw.$(gateway_id "$i")" >/dev/null 2>&1 || true
            done
        else
            rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
            drop_unused_node_accounts
        fi
    fi
    rm -f "$ENV_FILE" "$BROKERS_MARK" "$GATEWAYS_MARK"
    if [[ ${PURGE:-0} == 1 ]]; then
        umount_under "$CLUSTER_ROOT"
        rm -rf --one-file-system "$CLUSTER_ROOT"
        log "removed $CLUSTER_ROOT"
    fi
    log "cluster stopped"
}

status() {
    local i
    for (( i = 1; i <= MAX_NODES; i++ )); do
        [[ -e $(node_pidfile "$i") ]] || continue
        if node_answers "$i"; then log "node$i: up ($(node_addr "$i"))"; else log "node$i: not answering"; fi
    done
    if gateway_answers; then log "gateway: $GATEWAY_URL, $(ready_nodes) nodes ready"; else log "gateway: not answering"; fi
    for (( i = 2; i <= GATEWAYS; i++ )); do
        if gateway_answers "$i"; then log "gateway $i: https://127.0.0.1:$(gateway_port "$i") up"; else log "gateway $i: not answering"; fi
    done
}

case "${1:-}" in
    up) up "${2:-${NODES:-3}}" ;;
    down) down ;;
    status) status ;;
    *) die "usage: infra/cluster.sh up [NODES] | down | status" ;;
esac
