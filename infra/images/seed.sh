#!/usr/bin/env bash
# make images / make images-debian: build the seed images into .cache/images/<name> (only when
# their inputs changed) and push them to the local registry as library/<name>:<tag>.
# Usage: infra/images/seed.sh NAME...   (NAME: busybox, hello-world, debian)
# The registry must answer (make images starts it first).
set -euo pipefail
WHARF_LOG_TAG=images
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../lib.sh"

# image_tag NAME: the tag the build script writes and the registry gets.
image_tag() {
    case $1 in
        debian) echo bookworm-slim ;;
        *) echo latest ;;
    esac
}

# inputs NAME: a fingerprint of everything the image is built from. Scripts and sources are
# hashed; host tools by version and the binaries copied in by content.
inputs() {
    local name=$1
    (cd "$here" && sha256sum lib-umoci.sh "$name"/*)
    umoci --version
    case $name in
        busybox) sha256sum "${WHARF_BUSYBOX:-/bin/busybox}" ;;
        hello-world) gcc --version | head -n1 ;;
        debian)
            local tarball="${WHARF_DEBIAN_TARBALL:-$WHARF_IMAGE_CACHE/debian-bookworm-slim.tar}"
            if [[ -f $tarball ]]; then stat -c '%n %s %Y' "$tarball"; else echo "no tarball"; fi ;;
    esac
}

# build NAME: rebuild the layout when the fingerprint differs from the one stored with it.
build() {
    local name=$1 layout="$WHARF_IMAGE_CACHE/$1" stamp="$WHARF_IMAGE_CACHE/$1.inputs"
    local fingerprint start=$SECONDS
    [[ -x $here/$name/build.sh ]] || die "unknown image '$name' (no $here/$name/build.sh)"
    fingerprint=$(inputs "$name" | sha256sum | cut -d' ' -f1)
    if [[ -f $layout/index.json && -f $stamp && $(<"$stamp") == "$fingerprint" ]]; then
        log "$name: cached build is up to date ($layout)"
        return
    fi
    rm -f "$stamp"
    "$here/$name/build.sh" "$layout"
    # The debian build may just have made its tarball: fingerprint what was actually used.
    inputs "$name" | sha256sum | cut -d' ' -f1 >"$stamp"
    log "$name: built in $(( SECONDS - start ))s"
}

main() {
    (($# > 0)) || die "usage: $0 NAME..."
    require_root
    registry_answers || die "the registry does not answer on http://$REGISTRY_HOSTPORT; run 'make up' (or infra/up.sh registry)"
    mkdir -p "$WHARF_IMAGE_CACHE"
    local name
    for name in "$@"; do
        build "$name"
        "$here/push.sh" "$WHARF_IMAGE_CACHE/$name:$(image_tag "$name")" "$REGISTRY_HOSTPORT" \
            "library/$name:$(image_tag "$name")"
    done
}

main "$@"
