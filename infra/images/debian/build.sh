#!/usr/bin/env bash
# Build the seed `debian:bookworm-slim` image as an OCI layout.
# Usage: infra/images/debian/build.sh OUT_LAYOUT_DIR   → image tagged `bookworm-slim`
#
# The root filesystem comes from `debootstrap --variant=minbase` (needs the Debian mirror, about
# 40 s) and is cached as a tarball, WHARF_DEBIAN_TARBALL (default
# .cache/images/debian-bookworm-slim.tar), made only when absent; delete it to refresh.
# Mirror: WHARF_DEBIAN_MIRROR, else the one apt uses, else http://deb.debian.org/debian.
set -euo pipefail
WHARF_LOG_TAG=debian
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../../lib.sh"
# shellcheck source=infra/images/lib-umoci.sh
source "$here/../lib-umoci.sh"

SUITE=bookworm
TARBALL="${WHARF_DEBIAN_TARBALL:-$WHARF_IMAGE_CACHE/debian-bookworm-slim.tar}"
TAR_FLAGS=(--numeric-owner --xattrs --xattrs-include='*')

# apt_mirror: the first mirror apt is configured with for $SUITE (one-line or deb822 format).
apt_mirror() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $file ]] || continue
        awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i < NF; i++)
            if ($i ~ /^https?:\/\// && $(i + 1) == s) { print $i; exit } }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
            uri = ""; ok = 0
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
                if ($i ~ /^Suites:/) { n = split($i, w, /[ \t]+/); for (j = 2; j <= n; j++) if (w[j] == s) ok = 1 }
                if ($i ~ /^Enabled:[ \t]*no/) ok = 0
            }
            if (ok && uri ~ /^https?:\/\//) { print uri; exit }
        }' "$file"
    done
}

# slim ROOT: what the official -slim images drop: apt caches and lists, docs (copyrights
# stay), man pages, locales; dpkg is told to keep them out on later installs too.
slim() {
    local root=$1
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
        "$root"/var/lib/apt/lists/* "$root"/var/log/apt/* "$root"/var/log/dpkg.log \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
        "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
    mkdir -p "$root/var/lib/apt/lists/partial"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    # Host details debootstrap copied in; the engine provides its own per container.
    : >"$root/etc/resolv.conf"
    echo localhost >"$root/etc/hostname"
    rm -rf "${root:?}"/dev/* "$root"/tmp/* "$root"/var/tmp/*
}

make_tarball() {
    local mirror root
    mirror="${WHARF_DEBIAN_MIRROR:-$(apt_mirror | head -n1)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    mkdir -p "$(dirname "$TARBALL")"
    root=$(mktemp -d "$(dirname "$TARBALL")/.debootstrap.XXXXXX")
    remove_on_exit "$root" "$TARBALL.tmp"
    log "debootstrap --variant=minbase $SUITE from $mirror (needs the network; ~40 s)"
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
    rm -f "$root.log"
    umount_under "$root"   # debootstrap normally unmounts proc/sys itself; make sure
    slim "$root"
    tar "${TAR_FLAGS[@]}" -C "$root" -cf "$TARBALL.tmp" .
    mv -f "$TARBALL.tmp" "$TARBALL"
    log "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

fill_rootfs() {
    tar "${TAR_FLAGS[@]}" -xpf "$TARBALL" -C "$1"
}

main() {
    [[ $# -eq 1 ]] || die "usage: $0 OUT_LAYOUT_DIR"
    require_root
    require_cmd umoci debootstrap tar
    [[ -f $TARBALL ]] || make_tarball
    oci_from_rootfs "$1" bookworm-slim fill_rootfs --config.cmd bash
    log "built $1:bookworm-slim"
}

main "$@"
