# shellcheck shell=bash
# Helpers for the image build scripts: one-layer OCI images made with umoci (runtime-facts §6).
# Sourced after infra/lib.sh.

IMAGE_PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# oci_from_rootfs OUT_LAYOUT TAG ROOTFS_FILLER [umoci config flags...]
# Creates the OCI layout OUT_LAYOUT (replacing any previous one atomically) holding one image
# TAG whose single layer is whatever the function ROOTFS_FILLER puts into the directory it is
# given as $1. The remaining arguments go to `umoci config`.
oci_from_rootfs() {
    local out=$1 tag=$2 filler=$3; shift 3
    local work
    out=$(realpath -m "$out")
    mkdir -p "$(dirname "$out")"
    work=$(mktemp -d "$(dirname "$out")/.build.XXXXXX")
    remove_on_exit "$work"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:$tag"
    umoci unpack --image "$work/oci:$tag" "$work/bundle" >/dev/null
    "$filler" "$work/bundle/rootfs"
    umoci repack --image "$work/oci:$tag" --history.created_by "wharf infra/images/$WHARF_LOG_TAG/build.sh" \
        "$work/bundle" >/dev/null
    umoci config --image "$work/oci:$tag" --os linux --config.env "$IMAGE_PATH_ENV" "$@"
    umoci gc --layout "$work/oci"
    rm -rf "$out"
    chmod -R u=rwX,go=rX "$work/oci"
    mv "$work/oci" "$out"
}
