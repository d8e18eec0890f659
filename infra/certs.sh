#!/usr/bin/env bash
# make certs: a CA, a server certificate and a client certificate for wharfd over TCP with
# mutual TLS (docs/tls.md). Usage: [CERT_DIR=dir] [CERT_HOSTS=a,b,...] infra/certs.sh
#
# CERT_DIR    where the files go (default /etc/wharf/tls):
#             ca.pem ca-key.pem                   the CA (kept: every certificate hangs off it)
#             server-cert.pem server-key.pem      wharfd's certificate (serverAuth, SANs below)
#             cert.pem key.pem                    a client certificate (clientAuth) for wharf/docker
# CERT_HOSTS  comma list of IP addresses and DNS names the server certificate is valid for
#             (default: this host's name, localhost, 127.0.0.1, ::1 and this host's addresses)
# CERT_SERVER the server certificate's file names: CERT_SERVER-cert.pem, CERT_SERVER-key.pem
#             (default server); a cluster issues one per host from the same CA, so a node's
#             key is its own (infra/vagrant/provision.sh)
#
# Idempotent: an existing CA is reused; a certificate is issued again only when it is missing,
# not signed by the CA, expiring within 30 days, or (server) its SANs differ from CERT_HOSTS.
# Keys are 0600. ECDSA P-256 keys: quick to make, accepted by Python's ssl, Go and openssl.
set -euo pipefail
WHARF_LOG_TAG=certs
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CERT_DIR="${CERT_DIR:-/etc/wharf/tls}"
CA_DAYS=3650
CERT_DAYS=825
RENEW_SECONDS=$((30 * 24 * 3600))

require_cmd openssl python3

default_hosts() {
    local name
    name=$(hostname)
    # shellcheck disable=SC2046  # one word per address
    printf '%s\n' "$name" localhost 127.0.0.1 ::1 $(hostname -I 2>/dev/null || true)
}

# normalized_sans: each entry of stdin (one a line) as DNS:name or IP:address in a canonical
# spelling, sorted and unique; the same form for CERT_HOSTS and for a certificate's SANs.
normalized_sans() {
    python3 -c '
import ipaddress, sys
out = set()
for raw in sys.stdin.read().replace(",", "\n").split("\n"):
    item = raw.strip()
    for prefix in ("IP Address:", "IP:", "DNS:"):
        if item.startswith(prefix):
            item = item[len(prefix):]
    if not item:
        continue
    try:
        out.add("IP:" + str(ipaddress.ip_address(item)))
    except ValueError:
        if not all(c.isalnum() or c in "-.*" for c in item):
            sys.exit(f"certs: error: {item!r} is neither an IP address nor a DNS name")
        out.add("DNS:" + item.lower())
print(",".join(sorted(out)))
'
}

cert_sans() {
    openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | normalized_sans
}

# usable CERT: exists, signed by our CA and valid for another 30 days.
usable() {
    [[ -s $1 ]] || return 1
    openssl verify -CAfile "$CERT_DIR/ca.pem" "$1" >/dev/null 2>&1 || return 1
    openssl x509 -in "$1" -noout -checkend "$RENEW_SECONDS" >/dev/null 2>&1
}

new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
    chmod 0600 "$1"
}

# issue NAME CN EXTENSIONS: key NAME-key (or key.pem) and certificate signed by the CA.
issue() {
    local cert=$1 key=$2 cn=$3 ext=$4 csr
    csr=$(mktemp)
    new_key "$key"
    openssl req -new -key "$key" -subj "/CN=$cn" -out "$csr"
    openssl x509 -req -in "$csr" -CA "$CERT_DIR/ca.pem" -CAkey "$CERT_DIR/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$CERT_DAYS" -sha256 \
        -extfile <(printf '%s\n' "$ext") -out "$cert" 2>/dev/null
    rm -f "$csr"
    chmod 0644 "$cert"
}

mkdir -p "$CERT_DIR"
chmod 0755 "$CERT_DIR"

if [[ -s $CERT_DIR/ca.pem && -s $CERT_DIR/ca-key.pem ]]; then
    log "reusing the CA in $CERT_DIR/ca.pem"
else
    new_key "$CERT_DIR/ca-key.pem"
    openssl req -x509 -new -key "$CERT_DIR/ca-key.pem" -sha256 -days "$CA_DAYS" \
        -subj "/CN=wharf CA" -out "$CERT_DIR/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    chmod 0644 "$CERT_DIR/ca.pem"
    log "created the CA $CERT_DIR/ca.pem"
fi

hosts=${CERT_HOSTS:-$(default_hosts | paste -sd, -)}
wanted=$(normalized_sans <<<"$hosts")
[[ -n $wanted ]] || die "CERT_HOSTS names no host"
server_name=${CERT_SERVER:-server}
[[ $server_name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "CERT_SERVER '$server_name' is not a file name"
server="$CERT_DIR/$server_name-cert.pem"
if usable "$server" && [[ -s $CERT_DIR/$server_name-key.pem && $(cert_sans "$server") == "$wanted" ]]
then
    log "server certificate $server is up to date ($wanted)"
else
    issue "$server" "$CERT_DIR/$server_name-key.pem" "${hosts%%,*}" \
        "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$wanted"
    log "issued the server certificate $server for $wanted"
fi

client="$CERT_DIR/cert.pem"
if usable "$client" && [[ -s $CERT_DIR/key.pem ]]; then
    log "client certificate $client is up to date"
else
    issue "$client" "$CERT_DIR/key.pem" client \
        "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    log "issued the client certificate $client"
fi
