#!/usr/bin/env bash
# make setup: Debian packages, the project's virtualenv, wharf commands on PATH, and a default
# /etc/wharf/daemon.json. Idempotent and quiet when there is nothing to do.
set -euo pipefail
WHARF_LOG_TAG=setup
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
    crun runc conmon docker-registry busybox-static gcc libc6-dev make iproute2 iptables
    skopeo umoci debootstrap zstd golang-github-containers-common python3-seccomp
    python3-venv python3-pip tmux curl ca-certificates procps openssl  # openssl: infra/certs.sh
    docker-compose  # only to validate docker-compose.dev.yml offline (tests/unit/test_deploy_files.py)
    chromium  # only to drive the dashboard headless in tests/integration/test_dashboard.py
    prometheus  # only to scrape both /metrics endpoints in tests/integration/test_metrics.py
)
VENV="$WHARF_REPO/.venv"
VENV_STAMP="$VENV/.wharf-pip-stamp"   # newer than every PIP_INPUTS file ⇒ up to date
COMMANDS=(wharf wharfd wharf-gateway)
BIN_DIR="${WHARF_BIN_DIR:-/usr/local/bin}"   # where the commands are linked

# missing_packages: print the packages from "$@" that dpkg does not have installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ $status == installed ]] || printf '%s\n' "$pkg"
    done
}

# Two Debian packages start a service of their own that wharf does not want: docker-registry
# (on :5000 with htpasswd auth; wharf runs its own instance, make up) and prometheus (on :9090
# scraping the host; tests/integration/test_metrics.py runs its own with a temporary config).
# disable_packaged_service NAME WHY: stop NAME's packaged service and keep it from starting.
disable_packaged_service() {
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$1.service" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$1 ]]; then
        "/etc/init.d/$1" stop >/dev/null 2>&1 || true
        update-rc.d "$1" disable >/dev/null 2>&1 || true
    fi
    log "disabled the packaged $1 service ($2)"
}

install_packages() {
    local -a missing wanted=("${PACKAGES[@]}")
    command -v rabbitmq-server >/dev/null 2>&1 || wanted+=(rabbitmq-server)
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    if ((${#missing[@]} == 0)); then
        log "Debian packages: all present"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if printf '%s\n' "${missing[@]}" | grep -qx docker-registry; then
        disable_packaged_service docker-registry "wharf starts its own with 'make up'"
    fi
    if printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
        disable_packaged_service prometheus "the metrics test runs its own"
    fi
}

# What the virtualenv is installed from: the four distributions and the dev tools.
PIP_INPUTS=(requirements-dev.txt shared/pyproject.toml services/daemon/pyproject.toml
            services/gateway/pyproject.toml cli/pyproject.toml)

setup_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating $VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    local entry input needs_pip=0
    [[ -f $VENV_STAMP ]] || needs_pip=1
    for input in "${PIP_INPUTS[@]}"; do
        [[ $WHARF_REPO/$input -nt $VENV_STAMP ]] && needs_pip=1
    done
    for entry in "${COMMANDS[@]}"; do
        [[ -x $VENV/bin/$entry ]] || needs_pip=1
    done
    if ((needs_pip)); then
        # Before the split into four distributions one "wharf" package mapped every folder;
        # its editable finder would shadow the namespace, so it goes first.
        if "$VENV/bin/pip" show -q wharf >/dev/null 2>&1; then
            log "removing the old single 'wharf' distribution"
            "$VENV/bin/pip" uninstall -q -y wharf
        fi
        log "pip install -r requirements-dev.txt (a pyproject.toml changed or first run)"
        # PYTHONWARNINGS: hush setuptools' editable-install banner in the build backend.
        # Output only on failure: a successful quiet install prints just index warnings.
        local out
        if ! out=$(cd "$WHARF_REPO" && PYTHONWARNINGS=ignore \
                "$VENV/bin/pip" install -q -r requirements-dev.txt 2>&1); then
            printf '%s\n' "$out" >&2
            die "pip install -r requirements-dev.txt failed"
        fi
        touch "$VENV_STAMP"
    else
        log "virtualenv: up to date"
    fi
}

# The CLI's start-up (docs/cli.md "Start-up"): an editable install leaves its modules without
# bytecode, and a shell with PYTHONDONTWRITEBYTECODE=1 would compile them on every `wharf` run
# (~15 ms for `wharf version`). compileall skips what is up to date.
compile_bytecode() {
    "$VENV/bin/python" -m compileall -q "$WHARF_REPO/cli/wharf" "$WHARF_REPO/shared/wharf" \
        >/dev/null || die "compileall failed"
}

link_commands() {
    local entry target link
    for entry in "${COMMANDS[@]}"; do
        target="$VENV/bin/$entry"
        link="$BIN_DIR/$entry"
        if [[ $(readlink "$link" 2>/dev/null) != "$target" ]]; then
            ln -sfn "$target" "$link"
            log "linked $link -> $target"
        fi
    done
}

write_daemon_config() {
    if [[ -e $WHARF_CONFIG_FILE ]]; then
        # Only a hint: the file is the operator's once it exists.
        if ! grep -q "127.0.0.1:$WHARF_REGISTRY_PORT" "$WHARF_CONFIG_FILE"; then
            log "note: $WHARF_CONFIG_FILE does not name the local registry 127.0.0.1:$WHARF_REGISTRY_PORT as a mirror"
        fi
        return
    fi
    mkdir -p "$(dirname "$WHARF_CONFIG_FILE")"
    printf '{\n  "registry-mirrors": ["http://127.0.0.1:%s"]\n}\n' "$WHARF_REGISTRY_PORT" \
        | write_if_changed "$WHARF_CONFIG_FILE" || true
    log "wrote $WHARF_CONFIG_FILE (registry mirror http://127.0.0.1:$WHARF_REGISTRY_PORT)"
}

main() {
    require_root
    install_packages
    setup_venv
    compile_bytecode
    link_commands
    write_daemon_config
}

main "$@"
