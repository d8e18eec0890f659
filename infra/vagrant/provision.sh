#!/usr/bin/env bash
# Provisioning of the Vagrant cluster (infra/vagrant/Vagrantfile, docs/deploy.md). Runs as root
# inside a VM; the repository is rsynced to $WHARF_REPO (default /opt/wharf).
#
#   provision.sh control CONTROL_IP NODE_IPS NODE_NAMES   the control VM: RabbitMQ, registry,
#                                                         gateway (lists are comma separated)
#   provision.sh node NAME NODE_IP CONTROL_IP             a host VM: wharfd
#   provision.sh export CONTROL_IP                        print (JSON, stdout) what the host VMs
#                                                         and the user need from the control VM
#
# The control VM runs the same scripts as `make setup`, `make rabbitmq`, `make up` (registry),
# `make images` and `make certs` on one host, with these differences, all for the private
# network:
#   - RabbitMQ listens on 127.0.0.1 and CONTROL_IP (/etc/rabbitmq/rabbitmq.conf), and
#     infra/rabbitmq.sh runs with WHARF_AMQP_HOST=CONTROL_IP, so the URLs it writes to
#     /etc/wharf/amqp.env name the address the host VMs reach;
#   - the registry (infra/up.sh registry, systemd unit wharf-registry) still listens on
#     127.0.0.1:5000 only, as infra/lib.sh fixes it; the unit wharf-forward runs the cluster's
#     TCP forwarder (infra/cluster/forward.py) from CONTROL_IP:5000 to it, as `make cluster-up`
#     does for its bridge;
#   - one server certificate (infra/certs.sh) is valid for every VM's name and address;
#   - the gateway (unit wharf-gateway) listens on 0.0.0.0:$GATEWAY_PORT with the token
#     `vagrant` (/etc/wharf/gateway/token).
# Every host VM gets its own secrets and no other's: the control VM makes one RabbitMQ account
# (infra/rabbitmq.sh node NAME) and one server certificate (infra/certs.sh, CERT_SERVER) per
# node; `export` prints them, the Vagrantfile stores each node's part in
# .wharf/vagrant/nodes/NAME.json (0600) on the machine running Vagrant, and the rsync to a VM
# leaves out every other node's file (and the user's client files). Its wharfd (unit wharfd) has
# node name = VM name, its AMQP URL points at the control VM and its registry mirror is the
# control VM's registry. Idempotent: a second run changes only what differs.
set -euo pipefail
export WHARF_REPO="${WHARF_REPO:-/opt/wharf}"
WHARF_LOG_TAG=vagrant
# shellcheck source=infra/lib.sh
source "$WHARF_REPO/infra/lib.sh"

GATEWAY_PORT="${WHARF_VAGRANT_GATEWAY_PORT:-8480}"
AMQP_ENV=/etc/wharf/amqp.env
NODE_ENV=/etc/wharf/node.env
TLS_DIR=/etc/wharf/tls
TOKENS_FILE=/etc/wharf/gateway-tokens
TOKEN_FILE=/etc/wharf/gateway/token
BUNDLE_DIR="$WHARF_REPO/.wharf/vagrant/nodes"
UNIT_DIR=/etc/systemd/system
CHANGED_UNITS=()

valid_ip() {
    python3 -c 'import ipaddress, sys; ipaddress.IPv4Address(sys.argv[1])' "$1" 2>/dev/null \
        || die "'$1' is not an IPv4 address"
}

valid_name() {
    [[ $1 =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$ ]] || die "'$1' is not a valid node name"
}

# unit NAME: install the unit file NAME from stdin; remember it when it changed.
unit() {
    if write_if_changed "$UNIT_DIR/$1"; then
        CHANGED_UNITS+=("$1")
        log "wrote $UNIT_DIR/$1"
    fi
}

# start_units UNIT...: enable and start them; restart those whose file just changed.
start_units() {
    local name
    systemctl daemon-reload
    for name in "$@"; do
        systemctl enable --quiet "$name"
        if [[ " ${CHANGED_UNITS[*]} " == *" $name "* ]]; then
            systemctl restart "$name"
        else
            systemctl start "$name"
        fi
    done
}

# --- the control VM ---------------------------------------------------------------------------

configure_rabbitmq() {
    local ip=$1
    mkdir -p /etc/rabbitmq
    if printf '%s\n' \
        "# written by infra/vagrant/provision.sh: loopback for the local tools, the private" \
        "# address for the host VMs (wharf-node) and the gateway" \
        "listeners.tcp.1 = 127.0.0.1:5672" \
        "listeners.tcp.2 = $ip:5672" | write_if_changed /etc/rabbitmq/rabbitmq.conf
    then
        log "RabbitMQ listens on 127.0.0.1:5672 and $ip:5672 (restarting it)"
        systemctl restart rabbitmq-server
    fi
    systemctl enable --quiet rabbitmq-server
}

registry_units() {
    local ip=$1
    unit wharf-registry.service <<EOF
# written by infra/vagrant/provision.sh: the registry of 'make up' (127.0.0.1:$WHARF_REGISTRY_PORT)
[Unit]
Description=wharf registry (infra/up.sh registry)
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
PIDFile=$REGISTRY_PIDFILE
ExecStart=$WHARF_REPO/infra/up.sh registry
ExecStop=$WHARF_REPO/infra/down.sh registry
TimeoutStartSec=90
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
    unit wharf-forward.service <<EOF
# written by infra/vagrant/provision.sh: the registry for the host VMs on the private network
[Unit]
Description=wharf: forward $ip:$WHARF_REGISTRY_PORT to the registry on 127.0.0.1
After=network-online.target wharf-registry.service
Wants=network-online.target wharf-registry.service

[Service]
ExecStart=/usr/bin/python3 $WHARF_REPO/infra/cluster/forward.py $ip:$WHARF_REGISTRY_PORT=127.0.0.1:$WHARF_REGISTRY_PORT
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
    start_units wharf-registry.service wharf-forward.service
}

ensure_token() {
    mkdir -p "$(dirname "$TOKEN_FILE")"
    if [[ -s $TOKEN_FILE ]] && grep -q '^vagrant ' "$TOKENS_FILE" 2>/dev/null; then
        return
    fi
    (umask 077; "$WHARF_REPO/.venv/bin/wharf-gateway" token create vagrant --scope admin --tokens-file "$TOKENS_FILE" >"$TOKEN_FILE")
    log "made the gateway token 'vagrant' ($TOKEN_FILE)"
}

gateway_unit() {
    unit wharf-gateway.service <<EOF
# written by infra/vagrant/provision.sh
[Unit]
Description=wharf gateway (cluster HTTP API on :$GATEWAY_PORT)
After=network-online.target rabbitmq-server.service
Wants=network-online.target rabbitmq-server.service

[Service]
# WHARF_GATEWAY_AMQP_URL, written by infra/rabbitmq.sh
EnvironmentFile=$AMQP_ENV
ExecStart=/usr/local/bin/wharf-gateway serve --listen 0.0.0.0:$GATEWAY_PORT --state-dir /var/lib/wharf-gateway --tokens-file $TOKENS_FILE --gateway-id gw-control --tls-cert $TLS_DIR/server-cert.pem --tls-key $TLS_DIR/server-key.pem --node-tls-ca $TLS_DIR/ca.pem --node-tls-cert $TLS_DIR/cert.pem --node-tls-key $TLS_DIR/key.pem
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
    start_units wharf-gateway.service
}

gateway_answers() {
    curl -sf --max-time 2 --cacert "$TLS_DIR/ca.pem" "https://127.0.0.1:$GATEWAY_PORT/healthz" 2>/dev/null \
        | grep -q '"broker":"connected"'
}

control() {
    (($# == 3)) || die "usage: $0 control CONTROL_IP NODE_IPS NODE_NAMES"
    local ip=$1 node_ips=$2 node_names=$3 entry
    valid_ip "$ip"
    for entry in ${node_ips//,/ }; do valid_ip "$entry"; done
    for entry in ${node_names//,/ }; do valid_name "$entry"; done
    "$WHARF_REPO/infra/setup.sh"
    configure_rabbitmq "$ip"
    WHARF_AMQP_HOST=$ip "$WHARF_REPO/infra/rabbitmq.sh"
    registry_units "$ip"
    "$WHARF_REPO/infra/images/seed.sh" busybox hello-world
    CERT_DIR=$TLS_DIR CERT_HOSTS="localhost,127.0.0.1,control,$ip" "$WHARF_REPO/infra/certs.sh"
    local names addrs i
    IFS=, read -r -a names <<<"$node_names"
    IFS=, read -r -a addrs <<<"$node_ips"
    ((${#names[@]} == ${#addrs[@]})) || die "NODE_IPS and NODE_NAMES differ in length"
    for i in "${!names[@]}"; do
        WHARF_AMQP_HOST=$ip "$WHARF_REPO/infra/rabbitmq.sh" node "${names[i]}"
        CERT_DIR=$TLS_DIR CERT_SERVER="node-${names[i]}" \
            CERT_HOSTS="${names[i]},${addrs[i]},localhost,127.0.0.1" "$WHARF_REPO/infra/certs.sh"
    done
    ensure_token
    gateway_unit
    wait_until "$WHARF_START_TIMEOUT" gateway_answers \
        || die "the gateway does not answer on :$GATEWAY_PORT; see journalctl -u wharf-gateway"
    log "control VM ready: gateway https://$ip:$GATEWAY_PORT, RabbitMQ $ip:5672, registry $ip:$WHARF_REGISTRY_PORT"
}

# export: one JSON object on stdout, read by the Vagrantfile (on the machine running Vagrant):
# the user's gateway, token and client files, and for each node its own bundle (its RabbitMQ
# URL, the CA, its server certificate and key), which the Vagrantfile gives to that VM only.
export_bundle() {
    (($# == 1)) || die "usage: $0 export CONTROL_IP"
    valid_ip "$1"
    [[ -s $TOKEN_FILE && -s $AMQP_ENV && -s $TLS_DIR/ca.pem ]] \
        || die "the control VM is not provisioned yet (no $TOKEN_FILE, $AMQP_ENV or TLS files)"
    python3 - "$1" "$GATEWAY_PORT" "$WHARF_REGISTRY_PORT" "$TOKEN_FILE" "$TLS_DIR" <<'PY'
import json, pathlib, sys
ip, port, registry_port, token_file, tls = sys.argv[1:]
tls_dir = pathlib.Path(tls)


def env_url(path):
    pairs = dict(line.split("=", 1) for line in path.read_text().splitlines()
                 if line and not line.startswith("#"))
    return pairs["WHARF_AMQP_URL"]


nodes = {}
for env in sorted(pathlib.Path("/etc/wharf/nodes").glob("*.amqp.env")):
    name = env.name.removesuffix(".amqp.env")
    cert, key = tls_dir / f"node-{name}-cert.pem", tls_dir / f"node-{name}-key.pem"
    if cert.exists() and key.exists():
        nodes[name] = {"control": ip, "amqp_url": env_url(env),
                       "tls": {"ca.pem": (tls_dir / "ca.pem").read_text(),
                               "server-cert.pem": cert.read_text(),
                               "server-key.pem": key.read_text()}}
json.dump({
    "control": ip,
    "gateway": f"https://{ip}:{port}",
    "token": pathlib.Path(token_file).read_text().strip(),
    "registry": f"{ip}:{registry_port}",
    "tls": {name: (tls_dir / name).read_text() for name in ("ca.pem", "cert.pem", "key.pem")},
    "nodes": nodes,
}, sys.stdout)
sys.stdout.write("\n")
PY
}

# --- a host VM --------------------------------------------------------------------------------

# import_bundle NAME CONTROL_IP: this node's AMQP URL and TLS files, from its own bundle.
import_bundle() {
    local name=$1 control_ip=$2 bundle="$BUNDLE_DIR/$1.json"
    [[ -s $bundle ]] || die "$bundle is missing: bring the control VM up first
(vagrant up control), then 'vagrant rsync $name' and 'vagrant provision $name'"
    python3 - "$bundle" "$control_ip" "$TLS_DIR" <<'PY'
import json, os, pathlib, sys
path, control_ip, tls = sys.argv[1:]
data = json.loads(pathlib.Path(path).read_text())
if data.get("control") != control_ip:
    sys.exit(f"vagrant: error: {path} is from control VM {data.get('control')}, not {control_ip}")
os.makedirs(tls, exist_ok=True)
for name, mode in (("ca.pem", 0o644), ("server-cert.pem", 0o644), ("server-key.pem", 0o600)):
    target = pathlib.Path(tls) / name
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(data["tls"][name])
    os.chmod(tmp, mode)
    os.replace(tmp, target)
print(data["amqp_url"])
PY
}

node() {
    (($# == 3)) || die "usage: $0 node NAME NODE_IP CONTROL_IP"
    local name=$1 ip=$2 control_ip=$3 amqp_url
    valid_name "$name"
    valid_ip "$ip"
    valid_ip "$control_ip"
    "$WHARF_REPO/infra/setup.sh"
    # setup.sh installs rabbitmq-server for the single-host case; a host VM uses the control
    # VM's broker, so its own does not run.
    if systemctl is-enabled --quiet rabbitmq-server 2>/dev/null \
        || systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
        systemctl disable --now --quiet rabbitmq-server
        log "stopped this VM's own RabbitMQ (the control VM's serves the cluster)"
    fi
    amqp_url=$(import_bundle "$name" "$control_ip")
    [[ -n $amqp_url ]] || die "$BUNDLE_DIR/$name.json holds no amqp_url"
    mkdir -p "$(dirname "$NODE_ENV")"
    # Single quotes: systemd takes the JSON labels literally.
    if printf '%s\n' "# written by infra/vagrant/provision.sh (read by wharfd.service)" \
        "WHARF_AMQP_URL=$amqp_url" \
        "WHARF_NODE_NAME=$name" \
        "WHARF_NODE_LABELS='{\"node\": \"$name\"}'" \
        | (umask 077; write_if_changed "$NODE_ENV"); then
        CHANGED_UNITS+=(wharfd.service)
    fi
    chmod 0600 "$NODE_ENV"
    unit wharfd.service <<EOF
# written by infra/vagrant/provision.sh
[Unit]
Description=wharfd (wharf host daemon, node $name)
After=network-online.target
Wants=network-online.target

[Service]
# WHARF_AMQP_URL (the control VM's broker), WHARF_NODE_NAME, WHARF_NODE_LABELS
EnvironmentFile=$NODE_ENV
ExecStart=/usr/local/bin/wharfd -H unix://$WHARFD_SOCKET -H tcp://$ip:2376 --tlsverify --tlscacert $TLS_DIR/ca.pem --tlscert $TLS_DIR/server-cert.pem --tlskey $TLS_DIR/server-key.pem --registry-mirror http://$control_ip:$WHARF_REGISTRY_PORT --insecure-registry $control_ip:$WHARF_REGISTRY_PORT
# As docker.service: a daemon restart leaves the containers (conmon and their processes) alone.
KillMode=process
Delegate=yes
Restart=on-failure
RestartSec=2
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
    start_units wharfd.service
    wait_until "$WHARF_START_TIMEOUT" wharfd_answers \
        || die "wharfd does not answer on unix://$WHARFD_SOCKET; see journalctl -u wharfd"
    log "$name ready: unix://$WHARFD_SOCKET and tcp://$ip:2376 (mutual TLS); control $control_ip"
}

main() {
    require_root
    case "${1:-}" in
        control) shift; control "$@" ;;
        node) shift; node "$@" ;;
        export) shift; export_bundle "$@" ;;
        *) die "usage: $0 control CONTROL_IP NODE_IPS NODE_NAMES | node NAME NODE_IP CONTROL_IP | export CONTROL_IP" ;;
    esac
}

main "$@"
