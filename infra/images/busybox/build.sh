#!/usr/bin/env bash
# Build the seed `busybox` image from Debian's busybox-static as an OCI layout.
# Usage: infra/images/busybox/build.sh OUT_LAYOUT_DIR   → image tagged `latest`
# Works offline; needs root (umoci unpack/repack keep file ownership).
set -euo pipefail
WHARF_LOG_TAG=busybox
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../../lib.sh"
# shellcheck source=infra/images/lib-umoci.sh
source "$here/../lib-umoci.sh"

BUSYBOX="${WHARF_BUSYBOX:-/bin/busybox}"

fill_rootfs() {
    local root=$1 applet
    install -d -m 0755 "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,root,home,var/spool/mail,var/www}
    install -d -m 1777 "$root/tmp"
    install -d -m 0700 "$root/root"
    install -m 0755 "$BUSYBOX" "$root/bin/busybox"
    # Every applet at the path busybox itself lists (bin/sh, usr/bin/env, …).
    while read -r applet; do
        [[ -n $applet && $applet != bin/busybox ]] || continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sfn /bin/busybox "$root/$applet"
    done < <("$BUSYBOX" --list-full)
    cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
    cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
GROUP
    chmod 0644 "$root/etc/passwd" "$root/etc/group"
    printf 'root:*::0:::::\nnobody:*::0:::::\n' >"$root/etc/shadow"
    chmod 0640 "$root/etc/shadow"
}

main() {
    [[ $# -eq 1 ]] || die "usage: $0 OUT_LAYOUT_DIR"
    require_root
    require_cmd umoci
    [[ -x $BUSYBOX ]] || die "$BUSYBOX is missing (apt-get install busybox-static)"
    oci_from_rootfs "$1" latest fill_rootfs --config.cmd sh
    log "built $1:latest"
}

main "$@"
