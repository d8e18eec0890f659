#!/usr/bin/env bash
# Push one image from an OCI layout to a registry over plain HTTP, unless the registry already
# holds the same manifest under that tag.
# Usage: infra/images/push.sh LAYOUT:TAG REGISTRY_HOSTPORT REPO:TAG
#   e.g. infra/images/push.sh .cache/images/busybox:latest 127.0.0.1:5000 library/busybox:latest
set -euo pipefail
WHARF_LOG_TAG=push
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../lib.sh"

MANIFEST_TYPES=(
    application/vnd.oci.image.manifest.v1+json
    application/vnd.oci.image.index.v1+json
    application/vnd.docker.distribution.manifest.v2+json
    application/vnd.docker.distribution.manifest.list.v2+json
)

# layout_digest LAYOUT TAG: the manifest digest index.json records for TAG.
layout_digest() {
    python3 - "$1/index.json" "$2" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
for desc in index.get("manifests", []):
    if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(desc["digest"])
        break
PY
}

# registry_digest HOSTPORT REPO TAG: Docker-Content-Digest of the tag, empty when absent.
registry_digest() {
    local -a accept=()
    local type
    for type in "${MANIFEST_TYPES[@]}"; do accept+=(-H "Accept: $type"); done
    curl -sfI --max-time 5 "${accept[@]}" "http://$1/v2/$2/manifests/$3" 2>/dev/null \
        | awk 'tolower($1) == "docker-content-digest:" { sub(/\r$/, "", $2); print $2 }' || true
}

main() {
    [[ $# -eq 3 && $1 == *:* && $3 == *:* ]] || die "usage: $0 LAYOUT:TAG REGISTRY_HOSTPORT REPO:TAG"
    require_cmd skopeo curl python3
    local layout=${1%:*} src_tag=${1##*:} registry=$2 repo=${3%:*} tag=${3##*:}
    local want have out
    [[ -f $layout/index.json ]] || die "$layout is not an OCI layout (no index.json)"
    want=$(layout_digest "$layout" "$src_tag")
    [[ -n $want ]] || die "$layout has no image tagged '$src_tag'"
    have=$(registry_digest "$registry" "$repo" "$tag")
    if [[ $have == "$want" ]]; then
        log "$registry/$repo:$tag is up to date ($want)"
        return
    fi
    if ! out=$(skopeo copy --quiet --dest-tls-verify=false \
            "oci:$layout:$src_tag" "docker://$registry/$repo:$tag" 2>&1); then
        printf '%s\n' "$out" >&2
        die "skopeo could not push $layout:$src_tag to $registry/$repo:$tag"
    fi
    have=$(registry_digest "$registry" "$repo" "$tag")
    [[ $have == "$want" ]] || log "note: the registry stores $repo:$tag as $have (layout has $want)"
    log "pushed $registry/$repo:$tag ($have)"
}

main "$@"
