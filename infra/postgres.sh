#!/usr/bin/env bash
# PostgreSQL for gateways that share their records (docs/cluster.md "Several gateways"):
# Debian's postgresql installed and its cluster running, a role `wharf_gateway` (login, no
# other right) with a password generated once, and a database `wharf` it owns. The URL the
# gateways read is written to /etc/wharf/gateway-db.env (0600), as
#   WHARF_GATEWAY_DATABASE_URL=postgresql://wharf_gateway:…@127.0.0.1:5432/wharf
# (WHARF_DB_ENV overrides the file, WHARF_DB_NAME the database.) PostgreSQL listens on loopback
# only, as Debian configures it; gateways on other hosts need listen_addresses and a pg_hba.conf
# line for their network (docs/cluster.md says which).
# Idempotent: an existing role keeps its password (re-applied, so a reset cluster heals).
set -euo pipefail
WHARF_LOG_TAG=postgres
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DB_ENV="${WHARF_DB_ENV:-/etc/wharf/gateway-db.env}"
DB_NAME="${WHARF_DB_NAME:-wharf}"
ROLE=wharf_gateway

require_root
if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql (Debian's)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi

# The newest cluster Debian made (15/main on bookworm); created if there is none.
cluster=$(pg_lsclusters -h | sort -k1,1n | tail -n1)
if [[ -z $cluster ]]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
    pg_createcluster "$version" main >/dev/null
    cluster=$(pg_lsclusters -h | tail -n1)
fi
read -r version name port status _ <<<"$cluster"
if [[ $status != online* ]]; then
    log "starting PostgreSQL $version/$name"
    pg_ctlcluster "$version" "$name" start
fi
psql_admin() { runuser -u postgres -- psql -p "$port" -X -q -v ON_ERROR_STOP=1 "$@"; }
wait_until 30 psql_admin -c 'SELECT 1' >/dev/null \
    || die "PostgreSQL $version/$name does not answer; see /var/log/postgresql/"

password=""
if [[ -r $DB_ENV ]]; then
    password=$(grep -oP "postgresql://${ROLE}:\\K[^@]+" "$DB_ENV" | head -n1 || true)
fi
[[ -n $password ]] || password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)

# The password goes to psql on stdin (never on a command line) and is quoted as a literal.
psql_admin -v role="$ROLE" -v pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
    WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'role', :'pw') \gexec
SQL
if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER $ROLE"
    log "created database $DB_NAME (owner $ROLE)"
fi
psql_admin -d "$DB_NAME" -c "REVOKE ALL ON DATABASE \"$DB_NAME\" FROM PUBLIC"

printf 'WHARF_GATEWAY_DATABASE_URL=postgresql://%s:%s@127.0.0.1:%s/%s\n' \
    "$ROLE" "$password" "$port" "$DB_NAME" | write_private "$DB_ENV"
log "PostgreSQL $version/$name on 127.0.0.1:$port, database $DB_NAME; gateways' URL in $DB_ENV"
