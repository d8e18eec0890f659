#!/usr/bin/env bash
# Before `docker-compose -f docker-compose.dev.yml build` on a machine without Docker Hub: the two
# inputs of the stack's images that Docker cannot fetch by itself (docs/deploy.md §3).
# Usage: infra/images/dev/prepare.sh          (as root, after `make setup`; the registry running)
#
# 1. The base image, in the Docker engine that DOCKER_HOST names (default: dockerd's socket):
#    127.0.0.1:5000/library/debian:bookworm-slim from wharf's local registry. When the registry
#    does not hold it yet, `infra/images/seed.sh debian` (what `make images-debian` runs:
#    debootstrap, needs the Debian mirror once) puts it there first. Then `docker pull`: the
#    engine fetches it from the loopback registry, which dockerd allows over plain HTTP
#    (127.0.0.0/8 is an insecure registry by default); unchanged, the pull is a no-op.
# 2. The Python wheelhouse, $WHEELS (.cache/dev-image/wheels, inside the build context): the
#    third-party wheels of the four wharf distributions, with setuptools and wheel to build
#    them, made by this host's pip (which reaches PyPI or a local index). The image installs
#    from it with --no-index: no pip network inside the build. Remade only when a pyproject.toml
#    changed (a stamp holds their digest), so Docker's cache of the install layer stays valid.
#
# The Debian packages are installed by apt inside the build (network: host in the compose
# file): those the build needs from the mirror, nothing from Docker Hub.
set -euo pipefail
WHARF_LOG_TAG=dev-image
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../../lib.sh"

BASE_REPO=library/debian
BASE_TAG=bookworm-slim
BASE_IMAGE="$REGISTRY_HOSTPORT/$BASE_REPO:$BASE_TAG"
WHEELS="$WHARF_REPO/.cache/dev-image/wheels"
DISTRIBUTIONS=("shared[amqp]" services/daemon services/gateway cli)
PIP="$WHARF_REPO/.venv/bin/pip"

registry_has_base() {
    curl -sf -o /dev/null --max-time 5 -I \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY_HOSTPORT/v2/$BASE_REPO/manifests/$BASE_TAG"
}

base_image() {
    registry_answers || die "the registry does not answer on http://$REGISTRY_HOSTPORT; run 'make up' (or infra/up.sh registry)"
    if ! registry_has_base; then
        log "the registry has no $BASE_REPO:$BASE_TAG yet: building it (make images-debian)"
        "$WHARF_REPO/infra/images/seed.sh" debian
    fi
    docker pull -q "$BASE_IMAGE" >/dev/null || die "docker pull $BASE_IMAGE failed"
    log "base image $BASE_IMAGE in the Docker engine"
}

# fingerprint: what the wheelhouse is made from.
fingerprint() {
    (cd "$WHARF_REPO" && sha256sum shared/pyproject.toml services/daemon/pyproject.toml \
        services/gateway/pyproject.toml cli/pyproject.toml)
    "$PIP" --version
}

wheelhouse() {
    local stamp="$WHEELS.inputs" digest tmp
    digest=$(fingerprint | sha256sum | cut -d' ' -f1)
    if [[ -d $WHEELS && -f $stamp && $(<"$stamp") == "$digest" ]]; then
        log "wheelhouse up to date ($WHEELS)"
        return
    fi
    [[ -x $PIP ]] || die "no $PIP; run 'make setup' first"
    mkdir -p "$(dirname "$WHEELS")"
    tmp=$(mktemp -d "$WHEELS.XXXXXX")
    remove_on_exit "$tmp"
    # (pip's notes about index locations of this host's pip.conf are left out)
    (cd "$WHARF_REPO" && "$PIP" wheel --quiet --wheel-dir "$tmp" "${DISTRIBUTIONS[@]/#/./}") \
        2> >(grep -v '^WARNING: Location' >&2) || die "pip wheel failed"
    # wharf's own distributions are built inside the image from the copied sources.
    rm -f "$tmp"/wharf_*.whl
    "$PIP" download --quiet --only-binary=:all: --dest "$tmp" "setuptools>=68" wheel \
        2> >(grep -v '^WARNING: Location' >&2) || die "pip download of setuptools and wheel failed"
    rm -rf "$WHEELS" "$stamp"
    mv "$tmp" "$WHEELS"
    chmod 0755 "$WHEELS"
    echo "$digest" >"$stamp"
    log "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels in $WHEELS"
}

main() {
    [[ $# -eq 0 ]] || die "usage: $0   (no arguments)"
    require_root
    require_cmd docker curl
    base_image
    wheelhouse
}

main "$@"
