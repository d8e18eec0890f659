#!/usr/bin/env bash
# A RabbitMQ cluster of N nodes on this machine, for the control plane's high availability
# (docs/cluster.md "A cluster of brokers"). Debian's rabbitmq-server, one Erlang node per broker:
#
#   infra/brokers.sh up [N]      N nodes (default 3, at most 7): ${PREFIX}1..N@localhost, AMQP on
#                                127.0.0.1:$((PORT+i)), distribution on $((PORT+i+20000)), data
#                                and logs in $BASE/${PREFIX}i (owned by rabbitmq, 0750); node 1
#                                is the seed the others join. Then the control plane's vhost and
#                                the gateway's account (infra/amqp-accounts.sh; the password of
#                                /etc/wharf/amqp.env when it has one) and writes $ENV_FILE (0600):
#                                  WHARF_BROKER_PORTS="5701 5702 5703"
#                                  WHARF_GATEWAY_AMQP_URL=amqp://wharf-gateway:…@127.0.0.1:5701/wharf,…
#   infra/brokers.sh node NAME [ENV_FILE]
#                                node NAME's own account on the cluster, its URLs (one per
#                                broker, host WHARF_AMQP_HOST) in ENV_FILE as WHARF_AMQP_URL=…
#   infra/brokers.sh stop I | kill I | start I
#                                stop broker I (the whole Erlang node, cleanly), kill it (SIGKILL,
#                                as in a power cut) or start it again: what a failure and a
#                                recovery look like; a started node rejoins the cluster
#   infra/brokers.sh status      each broker: running or not, and the cluster it sees
#   infra/brokers.sh down        stop every broker and delete its data
#
# Environment: WHARF_BROKERS_PREFIX (wharf-mq), WHARF_BROKERS_PORT (5700: broker i listens on
# 5700+i), WHARF_BROKERS_BASE (/var/lib/wharf-brokers), WHARF_BROKERS_ENV
# (/etc/wharf/brokers.env), WHARF_AMQP_VHOST (wharf). The system's own broker
# (rabbit@localhost, 5672) is left alone. Every broker shares the rabbitmq user's Erlang cookie.
# Idempotent: a running broker is left alone; a node already in the cluster is not joined again.
set -euo pipefail
WHARF_LOG_TAG=brokers
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=infra/amqp-accounts.sh
source "$(dirname "${BASH_SOURCE[0]}")/amqp-accounts.sh"

PREFIX="${WHARF_BROKERS_PREFIX:-wharf-mq}"
PORT="${WHARF_BROKERS_PORT:-5700}"
BASE="${WHARF_BROKERS_BASE:-/var/lib/wharf-brokers}"
ENV_FILE="${WHARF_BROKERS_ENV:-/etc/wharf/brokers.env}"
VHOST="${WHARF_AMQP_VHOST:-wharf}"
AMQP_ENV="${WHARF_AMQP_ENV:-/etc/wharf/amqp.env}"
AMQP_HOST="${WHARF_AMQP_HOST:-127.0.0.1}"
TIMEOUT="${WHARF_RABBITMQ_TIMEOUT:-60}"
MAX_BROKERS=7

node_name() { printf '%s%s@localhost' "$PREFIX" "$1"; }
node_dir() { printf '%s/%s%s' "$BASE" "$PREFIX" "$1"; }
ctl() {  # ctl I ARGS…: rabbitmqctl against broker I
    local i=$1
    shift
    rabbitmqctl -n "$(node_name "$i")" "$@"
}
answers() { ctl "$1" -q status >/dev/null 2>&1; }

count() {  # the brokers made so far: the highest I with a data dir
    local i=0
    while [[ -d $(node_dir $((i + 1))) ]]; do i=$((i + 1)); done
    printf '%s' "$i"
}

start_broker() {  # start_broker I
    local i=$1 dir
    dir=$(node_dir "$i")
    if answers "$i"; then
        log "$(node_name "$i"): already running (127.0.0.1:$((PORT + i)))"
        return
    fi
    mkdir -p "$dir"
    printf 'listeners.tcp.local = 127.0.0.1:%s\n' $((PORT + i)) \
        >"$dir/rabbitmq.conf"
    printf '[].\n' >"$dir/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$dir"
    chmod 0750 "$dir"
    su rabbitmq -s /bin/sh -c "test -w '$dir'" \
        || die "the rabbitmq user cannot write $dir: every directory above it must let it pass"
    RABBITMQ_NODENAME=$(node_name "$i") RABBITMQ_NODE_PORT=$((PORT + i)) \
        RABBITMQ_DIST_PORT=$((PORT + i + 20000)) RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/pid" \
        rabbitmq-server -detached >/dev/null 2>&1 || true
    local deadline=$((SECONDS + TIMEOUT))
    until answers "$i"; do
        if ((SECONDS >= deadline)); then
            show_log_tail "$dir/log/$(node_name "$i").log"
            die "$(node_name "$i") did not answer within ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    ctl "$i" -q await_startup >/dev/null
    log "$(node_name "$i"): started on 127.0.0.1:$((PORT + i))"
}

join() {  # join I: broker I joins broker 1's cluster (unless it is in it)
    local i=$1
    if ctl 1 -q cluster_status --formatter json | grep -q "\"$(node_name "$i")\""; then
        return
    fi
    local out
    # rabbitmqctl logs connection-tracking errors while a node joins: shown only on failure
    out=$({ ctl "$i" -q stop_app && ctl "$i" -q reset && ctl "$i" -q join_cluster "$(node_name 1)" \
        && ctl "$i" -q start_app; } 2>&1) || die "$(node_name "$i") did not join: ${out: -2000}"
    log "$(node_name "$i"): joined $(node_name 1)"
}

password_of() {  # password_of USER FILE…: as infra/rabbitmq.sh keeps them, or a new one
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

urls_of() {  # urls_of USER PASSWORD HOST: one URL per broker, comma-separated
    local i n out=""
    n=$(count)
    for ((i = 1; i <= n; i++)); do
        out+="${out:+,}amqp://$1:$2@$3:$((PORT + i))/$VHOST"
    done
    printf '%s' "$out"
}

accounts() {
    local password ports="" i n
    n=$(count)
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(node_name 1)  # amqp-accounts.sh's rabbitmqctl calls: the cluster
    amqp_ensure_vhost "$VHOST"
    password=$(password_of wharf-gateway "$ENV_FILE" "$AMQP_ENV")
    amqp_gateway_account "$VHOST" "$password"
    for ((i = 1; i <= n; i++)); do ports+="${ports:+ }$((PORT + i))"; done
    write_private "$ENV_FILE" <<EOF_ENV
# written by infra/brokers.sh: the RabbitMQ cluster's brokers and the gateway's URLs (vhost $VHOST)
WHARF_BROKER_PORTS="$ports"
WHARF_GATEWAY_AMQP_URL=$(urls_of wharf-gateway "$password" 127.0.0.1)
EOF_ENV
    log "vhost $VHOST and user wharf-gateway on the cluster; URLs in $ENV_FILE"
}

up() {
    local n=${1:-3} i
    [[ $n =~ ^[1-9]$ ]] && ((n <= MAX_BROKERS)) || die "brokers: 1 to $MAX_BROKERS, not '$n'"
    (($(count) <= n)) || die "$(count) brokers exist; 'infra/brokers.sh down' first to have $n"
    for ((i = 1; i <= n; i++)); do
        start_broker "$i"
    done
    for ((i = 2; i <= n; i++)); do
        join "$i"
    done
    accounts
}

node_account() {  # node_account NAME [ENV_FILE]
    local node=$1 file=${2:-/etc/wharf/nodes/$1.brokers.env} user password
    amqp_valid_node "$node" || die "invalid node name: $node"
    answers 1 || die "the brokers do not run; 'infra/brokers.sh up' first"
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(node_name 1)
    user="$AMQP_NODE_USER_PREFIX$node"
    password=$(password_of "$user" "$file")
    amqp_ensure_vhost "$VHOST"
    amqp_node_account "$VHOST" "$node" "$password"
    write_private "$file" <<EOF_ENV
# written by infra/brokers.sh node $node: node $node's own account on the broker cluster
WHARF_AMQP_URL=$(urls_of "$user" "$password" "$AMQP_HOST")
EOF_ENV
    log "node $node: user $user on the cluster's vhost $VHOST; URLs in $file"
}

stop_broker() {  # stop_broker I: the Erlang node goes, as in a crash of that host
    local i=$1 pid
    if ! answers "$i"; then
        log "$(node_name "$i"): not running"
        return
    fi
    pid=$(cat "$(node_dir "$i")/pid" 2>/dev/null || true)
    ctl "$i" -q stop >/dev/null 2>&1 || true
    if [[ -n $pid ]]; then
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    log "$(node_name "$i"): stopped"
}

kill_broker() {  # kill_broker I: SIGKILL to broker I's Erlang VM, as in a power cut
    local i=$1 pid
    pid=$(cat "$(node_dir "$i")/pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || { log "$(node_name "$i"): not running"; return; }
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    log "$(node_name "$i"): killed (pid $pid)"
}

status() {
    local i n
    n=$(count)
    ((n > 0)) || { log "no brokers"; return; }
    for ((i = 1; i <= n; i++)); do
        if answers "$i"; then
            printf '%s\t127.0.0.1:%s\trunning\n' "$(node_name "$i")" $((PORT + i))
        else
            printf '%s\t127.0.0.1:%s\tstopped\n' "$(node_name "$i")" $((PORT + i))
        fi
    done
}

down() {
    local i n
    n=$(count)
    for ((i = n; i >= 1; i--)); do
        stop_broker "$i"
        rm -rf "$(node_dir "$i")"
    done
    rm -f "$ENV_FILE"
    log "brokers removed"
}

main() {
    require_root
    require_cmd rabbitmq-server rabbitmqctl
    case "${1:-}" in
        up) up "${2:-3}" ;;
        node) (($# == 2 || $# == 3)) || die "usage: $0 node NAME [ENV_FILE]"
              node_account "$2" "${3:-}" ;;
        stop) [[ ${2:-} =~ ^[1-9]$ ]] || die "usage: $0 stop I"; stop_broker "$2" ;;
        kill) [[ ${2:-} =~ ^[1-9]$ ]] || die "usage: $0 kill I"; kill_broker "$2" ;;
        start) [[ ${2:-} =~ ^[1-9]$ ]] || die "usage: $0 start I"; start_broker "$2" ;;
        status) status ;;
        down) down ;;
        *) die "usage: $0 up [N] | node NAME [ENV_FILE] | stop I | kill I | start I | status | down" ;;
    esac
}

main "$@"
