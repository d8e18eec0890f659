# shellcheck shell=bash
# The control plane's RabbitMQ accounts, as rabbitmqctl commands. Sourced (never run) by
# infra/rabbitmq.sh, infra/cluster.sh (through rabbitmq.sh) and the compose stack's
# infra/images/dev/rabbitmq-init.sh, so every way of setting up a broker grants the same rights
# (docs/security.md, "Nodes and the broker"):
#
#   wharf-gateway      configure, write, read on wharf.* — the gateway declares the exchanges,
#                      every node's queues and its own; it alone publishes commands.
#   wharf-node-<NODE>  configure nothing; write to wharf.events (topic permission: routing keys
#                      node.<NODE>.* only) and wharf.results; read its own two queues
#                      wharf.cmd.<NODE> and wharf.bcast.<NODE>. RabbitMQ checks each message's
#                      user_id against the login; the gateway drops what a node says for
#                      another.
#
# Each function is idempotent: an existing user gets the password it is given (so a reset broker
# heals) and its rights set again. rabbitmqctl must reach the broker.

AMQP_NODE_USER_PREFIX=wharf-node-   # wharf.topology.NODE_USER_PREFIX

amqp_ensure_vhost() {  # amqp_ensure_vhost VHOST
    rabbitmqctl -q list_vhosts | grep -qx "$1" || rabbitmqctl -q add_vhost "$1" >/dev/null
}

amqp_ensure_user() {  # amqp_ensure_user USER PASSWORD
    if ! rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$1"; then
        rabbitmqctl -q add_user "$1" "$2" >/dev/null
    else
        rabbitmqctl -q change_password "$1" "$2" >/dev/null
    fi
}

amqp_gateway_account() {  # amqp_gateway_account VHOST PASSWORD
    amqp_ensure_user wharf-gateway "$2"
    amqp_gateway_rights "$1"
}

amqp_gateway_rights() {  # amqp_gateway_rights VHOST: the gateway's rights on one more vhost
    rabbitmqctl -q set_permissions -p "$1" wharf-gateway '^wharf\.' '^wharf\.' '^wharf\.' \
        >/dev/null
}

# A node name as a literal in a regular expression (names are [A-Za-z0-9][A-Za-z0-9_.-]*: only
# the dot is special).
amqp_regex_literal() { printf '%s' "${1//./\\.}"; }

amqp_valid_node() {
    [[ $1 =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$ ]]
}

amqp_node_account() {  # amqp_node_account VHOST NODE PASSWORD
    local vhost=$1 node=$2 user="$AMQP_NODE_USER_PREFIX$2" literal
    amqp_valid_node "$node" || { echo "invalid node name: $node" >&2; return 1; }
    literal=$(amqp_regex_literal "$node")
    amqp_ensure_user "$user" "$3"
    rabbitmqctl -q set_permissions -p "$vhost" "$user" '^$' '^wharf\.(events|results)$' \
        "^wharf\\.(cmd|bcast)\\.$literal\$" >/dev/null
    rabbitmqctl -q set_topic_permissions -p "$vhost" "$user" wharf.events \
        "^node\\.$literal\\." '^$' >/dev/null
}

amqp_new_password() {
    head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32
}
