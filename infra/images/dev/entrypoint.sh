#!/usr/bin/env bash
# Entrypoint of the wharf dev image (Dockerfile beside this file, docker-compose.dev.yml).
# Usage: entrypoint.sh wharfd [FLAGS] | gateway [FLAGS] | seed | certs | COMMAND...
#
# wharfd   the container is not --privileged (that asks the engine for every capability, and
#          fails where the engine's own bounding set lacks one: runc "unable to apply caps");
#          the compose file gives it every capability the engine has and no seccomp/AppArmor
#          confinement, but the engine still mounts /sys, the cgroup hierarchies and /proc/sys
#          read-only. With CAP_SYS_ADMIN they are remounted read-write, as --privileged would
#          have mounted them, so crun can make cgroups and wharfd set its sysctls.
#          Then cgroup v2: in its own cgroup namespace the container's root cgroup holds this
#          process, and the kernel refuses to delegate controllers (cgroup.subtree_control) from
#          a cgroup that has processes in it, so crun could not make the containers' cgroups.
#          As docker-in-docker does, every process moves to a leaf cgroup `init` and the
#          controllers are enabled for the children. Then wharfd runs with the WHARF_*
#          environment (WHARF_AMQP_URL, WHARF_NODE_NAME, WHARF_NODE_LABELS, ...).
# gateway  makes sure a bearer token named $WHARF_DEV_TOKEN_NAME (default `dev`) is accepted:
#          the token from $WHARF_DEV_TOKEN_FILE (a compose secret) or $WHARF_DEV_TOKEN when one
#          is given (its SHA-256 digest is written to the tokens file; the token is not stored);
#          otherwise one is created once with `wharf-gateway token create` and kept in
#          $WHARF_GATEWAY_STATE_DIR/dev-token (0600). Then `wharf-gateway serve`, which reads
#          WHARF_GATEWAY_* itself.
# certs    the mutual TLS between the gateway and the daemons (the gateway's interactive
#          streams): one CA in $TLS_ROOT/ca (kept there, never handed out), and for each node
#          of $WHARF_DEV_NODES only its own files in $TLS_ROOT/<node> (ca.pem,
#          server-cert.pem for the name <node>, server-key.pem: wharfd's defaults when mounted
#          at /etc/wharf/tls), and the gateway's client certificate in $TLS_ROOT/gateway (ca.pem,
#          cert.pem, key.pem). infra/certs.sh does the work; run again, it keeps what is valid.
# seed     builds the busybox seed image (infra/images/busybox/build.sh) and pushes it to
#          $WHARF_SEED_REGISTRY (default registry:5000) with infra/images/push.sh.
set -euo pipefail

REPO=/opt/wharf
log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { printf 'entrypoint: error: %s\n' "$*" >&2; exit 1; }

# in_container: true inside a container (never touch a host's mounts): Docker's and Podman's
# marker files, or this image's own tini as PID 1 (wharfd writes no marker file).
in_container() {
    [[ -e /.dockerenv || -e /run/.containerenv || $(readlink /proc/1/exe 2>/dev/null) == /usr/bin/tini ]]
}

# writable_sys: remount /sys, every mount under /sys/fs/cgroup and /proc/sys read-write where
# they are read-only (a container run with capabilities rather than --privileged).
writable_sys() {
    in_container || { log "not in a container: leaving /sys and /proc/sys alone"; return 0; }
    local target options
    # mountinfo: field 5 is the mount point, field 6 its per-mount options.
    while read -r target options; do
        case $target in /sys | /sys/fs/cgroup | /sys/fs/cgroup/* | /proc/sys) ;; *) continue ;; esac
        [[ ,$options, == *,ro,* ]] || continue
        mount -o remount,rw,bind "$target" 2>/dev/null || mount -o remount,rw "$target" \
            || die "could not make $target writable: give the service CAP_SYS_ADMIN (or run it privileged)"
    done < <(awk '{print $5, $6}' /proc/self/mountinfo)
}

delegate_cgroups() {
    local root=/sys/fs/cgroup
    [[ -f $root/cgroup.controllers ]] || return 0   # cgroup v1: nothing to delegate
    # Only inside a container (its own cgroup namespace): on a host this would move every
    # process of the root cgroup.
    if ! in_container; then
        log "not in a container: leaving the cgroups alone"
        return 0
    fi
    [[ $(cat /proc/self/cgroup) == "0::/" ]] || { log "no private cgroup namespace: leaving the cgroups alone"; return 0; }
    [[ -w $root/cgroup.subtree_control ]] || die "$root is read-only: run this service privileged"
    mkdir -p "$root/init"
    # cgroupfs files report size 0, so read them. Processes may appear while we move them
    # (only tini and this shell run yet, but be thorough).
    local pid tries=0
    while [[ -n $(<"$root/cgroup.procs") ]] && (( tries++ < 10 )); do
        while read -r pid; do
            echo "$pid" >"$root/init/cgroup.procs" 2>/dev/null || true
        done <"$root/cgroup.procs"
    done
    local controllers
    controllers=$(sed -e 's/\([^ ]\+\)/+\1/g' "$root/cgroup.controllers")
    [[ -z $controllers ]] || echo "$controllers" >"$root/cgroup.subtree_control" \
        || die "could not enable the cgroup controllers ($controllers) in $root"
}

ensure_token() {
    local state=${WHARF_GATEWAY_STATE_DIR:-/var/lib/wharf-gateway}
    local tokens=${WHARF_GATEWAY_TOKENS_FILE:-/etc/wharf/gateway-tokens}
    local name=${WHARF_DEV_TOKEN_NAME:-dev} token=${WHARF_DEV_TOKEN:-}
    [[ $name =~ ^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,62}$ ]] || die "WHARF_DEV_TOKEN_NAME '$name' is not a valid token name"
    if [[ -n ${WHARF_DEV_TOKEN_FILE:-} ]]; then
        [[ -r $WHARF_DEV_TOKEN_FILE ]] || die "WHARF_DEV_TOKEN_FILE $WHARF_DEV_TOKEN_FILE is not readable"
        token=$(tr -d '\r\n' <"$WHARF_DEV_TOKEN_FILE")
    fi
    mkdir -p "$state" "$(dirname "$tokens")"
    if [[ -n $token ]]; then
        [[ $token =~ ^[!-~]{16,}$ ]] || die "the given token must be at least 16 printable characters without spaces"
        local digest tmp
        digest=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
        tmp=$(mktemp "$tokens.XXXXXX")
        { grep -v "^$name " "$tokens" 2>/dev/null || true; printf '%s sha256:%s\n' "$name" "$digest"; } >"$tmp"
        chmod 0600 "$tmp"
        mv -f "$tmp" "$tokens"
        rm -f "$state/dev-token"   # a token made earlier is no longer accepted
        log "token '$name' accepted (from ${WHARF_DEV_TOKEN_FILE:-WHARF_DEV_TOKEN})"
    elif ! grep -q "^$name " "$tokens" 2>/dev/null || [[ ! -s $state/dev-token ]]; then
        (umask 077; wharf-gateway token create "$name" --scope admin --tokens-file "$tokens" >"$state/dev-token")
        log "created token '$name': docker compose -f docker-compose.dev.yml exec gateway cat $state/dev-token"
    fi
}

TLS_ROOT=/tls

# copy_tls SRC DEST MODE: one file into a consumer's folder (atomically: a reader never sees
# half a key).
copy_tls() {
    install -m "$3" "$1" "$2.tmp" && mv -f "$2.tmp" "$2"
}

certs() {
    local ca=$TLS_ROOT/ca node
    [[ -n ${WHARF_DEV_NODES:-} ]] || die "set WHARF_DEV_NODES (the nodes' names, e.g. 'node1 node2')"
    for node in $WHARF_DEV_NODES; do
        [[ $node =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "'$node' is not a node name"
        [[ -d $TLS_ROOT/$node ]] || die "no $TLS_ROOT/$node: mount that node's TLS volume there"
        CERT_DIR=$ca CERT_SERVER=$node CERT_HOSTS=$node "$REPO/infra/certs.sh"
        copy_tls "$ca/ca.pem" "$TLS_ROOT/$node/ca.pem" 0644
        copy_tls "$ca/$node-cert.pem" "$TLS_ROOT/$node/server-cert.pem" 0644
        copy_tls "$ca/$node-key.pem" "$TLS_ROOT/$node/server-key.pem" 0600
    done
    [[ -d $TLS_ROOT/gateway ]] || die "no $TLS_ROOT/gateway: mount the gateway's TLS volume there"
    copy_tls "$ca/ca.pem" "$TLS_ROOT/gateway/ca.pem" 0644
    copy_tls "$ca/cert.pem" "$TLS_ROOT/gateway/cert.pem" 0644
    copy_tls "$ca/key.pem" "$TLS_ROOT/gateway/key.pem" 0600
}

seed() {
    local registry=${WHARF_SEED_REGISTRY:-registry:5000} out
    out=$(mktemp -d)
    "$REPO/infra/images/busybox/build.sh" "$out/busybox"
    "$REPO/infra/images/push.sh" "$out/busybox:latest" "$registry" library/busybox:latest
    rm -rf "$out"
}

role=${1:-}
case $role in
    wharfd)
        shift
        writable_sys
        delegate_cgroups
        exec wharfd "$@"
        ;;
    gateway)
        shift
        # HTTPS with a certificate of its own (a CA kept in its volume, made once by the
        # script `make certs` runs): the gateway refuses plain HTTP off loopback.
        CERT_DIR=${WHARF_GATEWAY_STATE_DIR:-/var/lib/wharf-gateway}/tls CERT_SERVER=gateway \
            CERT_HOSTS=localhost,127.0.0.1,gateway "$REPO/infra/certs.sh"
        ensure_token
        exec wharf-gateway serve "$@"
        ;;
    seed)
        seed
        ;;
    certs)
        certs
        ;;
    "")
        die "usage: entrypoint.sh wharfd [FLAGS] | gateway [FLAGS] | seed | certs | COMMAND..."
        ;;
    *)
        exec "$@"
        ;;
esac
