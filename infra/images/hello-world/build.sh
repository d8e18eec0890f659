#!/usr/bin/env bash
# Build the seed `hello-world` image: one layer holding /hello (hello.c, no libc).
# Usage: infra/images/hello-world/build.sh OUT_LAYOUT_DIR   → image tagged `latest`
# Works offline; needs gcc and root (umoci).
set -euo pipefail
WHARF_LOG_TAG=hello-world
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/lib.sh
source "$here/../../lib.sh"
# shellcheck source=infra/images/lib-umoci.sh
source "$here/../lib-umoci.sh"

# -nostdlib/-ffreestanding: no C runtime at all; -no-pie and noseparate-code keep the ELF to one
# small page-packed segment (about 1.3 KiB); no build id, so the same source gives the same bytes.
CFLAGS=(-static -nostdlib -ffreestanding -fno-stack-protector -no-pie -Os -s
        -fno-asynchronous-unwind-tables '-Wl,--build-id=none' '-Wl,-z,noseparate-code'
        -Wall -Wextra -Werror)
HELLO_BIN=""

fill_rootfs() {
    install -m 0755 "$HELLO_BIN" "$1/hello"
}

main() {
    [[ $# -eq 1 ]] || die "usage: $0 OUT_LAYOUT_DIR"
    require_root
    require_cmd gcc umoci
    local tmp
    tmp=$(mktemp -d)
    remove_on_exit "$tmp"
    HELLO_BIN="$tmp/hello"
    gcc "${CFLAGS[@]}" -o "$HELLO_BIN" "$here/hello.c"
    "$HELLO_BIN" | grep -q 'Hello from wharf!' || die "the compiled $HELLO_BIN does not greet"
    oci_from_rootfs "$1" latest fill_rootfs --config.cmd /hello
    log "built $1:latest (/hello is $(stat -c %s "$HELLO_BIN") bytes)"
}

main "$@"
