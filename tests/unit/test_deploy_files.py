"""The deployment files (docs/deploy.md): docker-compose.dev.yml, its image and the Vagrantfile.

Nothing here runs them (tests/integration/test_dev_stack.py starts the stack on dockerd; there
is no Vagrant), so the tests check what can be checked offline: the compose file against the
Compose schema (Debian's docker-compose 1.29, `config -q`), and the cross-references a schema
cannot see: files and scripts that exist, the daemons' capabilities, environment names and
flags the programs really read, script syntax.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest

from tests.layout import ROOT
from wharf.daemon.app import main as wharfd_main
from wharf.daemon.settings import DaemonSettings
from wharf.gateway.app import serve as gateway_serve
from wharf.gateway.settings import GatewaySettings
from wharf.topology import node_user

COMPOSE = ROOT / "docker-compose.dev.yml"
DEV_IMAGE = ROOT / "infra" / "images" / "dev"
ENTRYPOINT = DEV_IMAGE / "entrypoint.sh"
VAGRANT = ROOT / "infra" / "vagrant"
VAGRANTFILE = VAGRANT / "Vagrantfile"
PROVISION = VAGRANT / "provision.sh"
SETUP = ROOT / "infra" / "setup.sh"
# ARCHITECTURE.md §5: "docker-compose.dev.yml (RabbitMQ, registry, gateway, two daemons)".
STACK = {"rabbitmq", "registry", "gateway"}
DAEMONS = {"node1", "node2"}
GUEST_REPO = "/opt/wharf"  # where the image and the VMs keep the checkout
BASE_IMAGE = "127.0.0.1:5000/library/debian:bookworm-slim"  # infra/images/dev/prepare.sh
SYSTEM_PYTHON = "/usr/bin/python3"  # has PyYAML whenever docker-compose is installed

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian package docker-compose; `make setup` "
    "installs it): it validates docker-compose.dev.yml offline")


PASSWORDS = {"WHARF_AMQP_GATEWAY_PASSWORD": "gw-secret", "WHARF_AMQP_NODE1_PASSWORD": "n1-secret",
             "WHARF_AMQP_NODE2_PASSWORD": "n2-secret"}  # what infra/dev-env.sh writes to .env


def _compose_env(passwords: bool = True) -> dict[str, str]:
    """A clean environment: no WHARF_*/COMPOSE_* of the caller changes what is checked; the
    passwords the stack requires (it has no defaults) unless ``passwords`` is False."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return env | (PASSWORDS if passwords else {})


def _compose(*args: str, file: Path = COMPOSE,
             passwords: bool = True) -> subprocess.CompletedProcess[str]:
    # An empty --env-file: a developer's .env (infra/dev-env.sh) is not read.
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:
        return subprocess.run(["docker-compose", "-f", str(file), "--env-file", empty.name,
                               *args], cwd=ROOT, check=False, env=_compose_env(passwords),
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose model as docker-compose resolves it (anchors merged, defaults filled)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (`make setup` installs it); it resolves "
                    "docker-compose.dev.yml for these checks")
    out = _compose("config")
    assert out.returncode == 0, out.stderr
    as_json = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), "
         "sys.stdout)"], input=out.stdout, capture_output=True, text=True, check=True)
    model: dict[str, Any] = json.loads(as_json.stdout)
    return model


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict)
    return {str(k): str(v) for k, v in env.items()}


def _role(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    return str(command[0]) if command else ""


def _settings_env(cls: type[DaemonSettings] | type[GatewaySettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {prefix + name.upper() for name in cls.model_fields}


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("-")}


# --- docker-compose.dev.yml -------------------------------------------------------------------


@needs_compose
def test_compose_file_is_valid() -> None:
    out = _compose("config", "-q")
    assert out.returncode == 0, out.stderr


@needs_compose
def test_the_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    # Proves `config -q` really checks the schema: the same file with one wrong type fails.
    broken = tmp_path / "docker-compose.dev.yml"
    text = COMPOSE.read_text()
    assert "  cap_add: [ALL]\n" in text
    broken.write_text(text.replace("  cap_add: [ALL]\n", "  cap_add: {all: maybe}\n", 1))
    out = _compose("config", "-q", file=broken)
    assert out.returncode != 0
    assert "cap_add" in out.stderr


def test_the_stack_of_architecture_section_5(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= STACK | DAEMONS
    assert services["rabbitmq"]["image"] == "wharf-dev-rabbitmq:latest"
    assert services["registry"]["image"] == "wharf-dev-registry:latest"
    assert _role(services["gateway"]) == "gateway"
    for name in DAEMONS:
        assert _role(services[name]) == "wharfd", name
    # No Docker Hub: every image is built here, from the base in wharf's local registry, with
    # the host's network for apt (the test engine has no bridge or NAT).
    for name, service in services.items():
        assert service["build"]["args"] == {"BASE_IMAGE": BASE_IMAGE}, name
        assert service["build"]["network"] == "host", name
    # One wharf image for every wharf service.
    wharf = [s for s in services.values() if s["image"] == "wharf-dev:latest"]
    assert {json.dumps(s["build"], sort_keys=True) for s in wharf} == {
        json.dumps(services["gateway"]["build"], sort_keys=True)}
    assert {_role(s) for s in wharf} == {"wharfd", "gateway", "seed", "certs"}


def test_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        context = Path(service["build"]["context"])
        assert context.is_dir(), name
        dockerfile = context / service["build"].get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), (name, dockerfile)


def test_dockerfile_references_exist() -> None:
    for dockerfile in DEV_IMAGE.glob("*Dockerfile"):
        # one stage, on the seeded base (prepare.sh puts it in the engine)
        base = re.findall(r"^(?:ARG BASE_IMAGE=|FROM )(.*)$", dockerfile.read_text(), re.M)
        assert base == [BASE_IMAGE, "${BASE_IMAGE}"], dockerfile
    text = (DEV_IMAGE / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/opt/wharf/infra/images/dev/entrypoint.sh"]' \
        in text  # a PID 1 that reaps conmon's children, whatever the engine
    # Every path of the checkout the image uses (/opt/wharf/...) is in the repository.
    paths = set(re.findall(rf"{GUEST_REPO}/([\w./-]+)", text))
    for rel in paths:
        if rel.split("/")[0] in {".venv", "build"}:  # made by the build, not checked in
            continue
        assert (ROOT / rel).exists(), rel
    assert "infra/images/dev/entrypoint.sh" in paths
    assert os.access(ENTRYPOINT, os.X_OK)
    # The build context is the repository root; host state stays out of it.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", ".cache", ".wharf"} <= set(ignored)
    assert "!.cache/dev-image/wheels" in ignored  # the wheelhouse prepare.sh makes


def test_dockerfile_packages_are_those_of_setup() -> None:
    dockerfile = (DEV_IMAGE / "Dockerfile").read_text()
    match = re.search(r"apt-get install -y --no-install-recommends\s*\\\n(.*?)&&", dockerfile,
                      re.S)
    assert match is not None
    wanted = set(match.group(1).replace("\\", " ").split())
    setup = re.search(r"^PACKAGES=\((.*?)^\)", SETUP.read_text(), re.S | re.M)
    assert setup is not None
    listed = {w for line in setup.group(1).splitlines() for w in line.split("#")[0].split()}
    # python3 comes with python3-venv on a host; the image names it, and tini (its PID 1).
    assert wanted - {"python3", "tini"} <= listed, wanted - listed
    assert {"crun", "conmon", "busybox-static", "golang-github-containers-common"} <= wanted


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith(("/", ".")):
                assert Path(source).exists(), (name, source)


def test_the_daemons_are_privileged_and_separate(compose: dict[str, Any]) -> None:
    services = compose["services"]
    seen: dict[str, set[str]] = {"name": set(), "cgroup": set(), "volume": set()}
    for name in DAEMONS:
        service = services[name]
        env = _env(service)
        # every capability the engine has (not `privileged`, which fails where it lacks one)
        assert (service["cap_add"], service["cap_drop"]) == (["ALL"], ["SYS_RESOURCE"]), name
        assert "seccomp=unconfined" in service["security_opt"], name
        assert env["WHARF_NODE_NAME"] == name
        assert json.loads(env["WHARF_NODE_LABELS"])["node"] == name
        data = [str(v).split(":")[0] for v in service["volumes"]
                if str(v).split(":")[1] == env.get("WHARF_DATA_ROOT", "/var/lib/wharf")]
        assert len(data) == 1 and not data[0].startswith(("/", ".")), (name, data)
        seen["name"].add(env["WHARF_NODE_NAME"])
        seen["cgroup"].add(env["WHARF_CGROUP_PARENT"])
        seen["volume"].add(data[0])
        # each node its own account, named as the gateway expects (wharf.topology.node_user)
        number = name.removeprefix("node")
        assert env["WHARF_AMQP_URL"] == (f"amqp://{node_user(name)}:n{number}-secret"
                                         "@rabbitmq:5672/wharf")
        assert f"{name}=n{number}-secret" in _env(services["rabbitmq"])[
            "WHARF_AMQP_NODE_ACCOUNTS"].split()
    assert all(len(values) == len(DAEMONS) for values in seen.values()), seen


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, (name, target)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
    for name in STACK | DAEMONS:
        assert "healthcheck" in services[name], name
    # Nothing wharf runs starts before the broker has its accounts, the registry answers and
    # the certificates exist.
    wanted = {"gateway": {"rabbitmq"}} | {name: {"rabbitmq", "registry"} for name in DAEMONS}
    for name, targets in wanted.items():
        depends = services[name]["depends_on"]
        assert set(depends) == targets | {"certs"}, name
        assert depends.pop("certs")["condition"] == "service_completed_successfully", name
        assert {spec["condition"] for spec in depends.values()} == {"service_healthy"}, name


def test_the_gateway_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert name == "gateway", name
            published = port if isinstance(port, str) else port.get("host_ip", "")
            assert str(published).startswith("127.0.0.1"), port


def test_environment_names_are_read_by_the_programs(compose: dict[str, Any]) -> None:
    daemon_env, gateway_env = _settings_env(DaemonSettings), _settings_env(GatewaySettings)
    scripts = {p.name: p.read_text() for p in DEV_IMAGE.iterdir() if p.suffix == ".sh"}
    for name, service in compose["services"].items():
        for var in _env(service):
            if _role(service) == "wharfd":
                assert var in daemon_env, (name, var)
            elif _role(service) == "gateway" and var.startswith("WHARF_GATEWAY_"):
                assert var in gateway_env, (name, var)
            elif "registry" in service.get("image", ""):
                assert var.startswith("REGISTRY_"), (name, var)  # the registry's own config
            else:
                readers = [f for f, text in scripts.items() if f"${{{var}" in text
                           or f"${var}" in text]
                assert readers, f"{name}: nothing under infra/images/dev/ reads {var}"


def test_daemon_environment_parses(compose: dict[str, Any],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The values, not just the names: JSON labels and lists as pydantic-settings reads them.
    for name in DAEMONS:
        for var in list(os.environ):
            if var.startswith("WHARF_"):
                monkeypatch.delenv(var)
        monkeypatch.setenv("WHARF_CONFIG_FILE", "/nonexistent/daemon.json")
        for var, value in _env(compose["services"][name]).items():
            monkeypatch.setenv(var, value)
        settings = DaemonSettings()
        assert settings.node_name == name
        assert settings.registry_mirrors == ["http://registry:5000"]
        assert "registry:5000" in settings.insecure_registries
        # mutual TLS for the gateway's streams, at the name the certs service issues for
        assert settings.tlsverify and settings.advertised_address == f"{name}:2376"
        tls = [str(v) for v in compose["services"][name]["volumes"] if ":/etc/wharf/tls" in str(v)]
        assert tls == [f"{name}-tls:/etc/wharf/tls:ro"], tls


def test_entrypoint_roles_exist(compose: dict[str, Any]) -> None:
    roles = set(re.findall(r"^    ([a-z]+)\)$", ENTRYPOINT.read_text(), re.M))
    for name, service in compose["services"].items():
        if service["image"] == "wharf-dev:latest":
            assert _role(service) in roles, (name, _role(service))


# --- the Vagrant cluster ----------------------------------------------------------------------


def test_vagrantfile_describes_the_cluster() -> None:
    text = VAGRANTFILE.read_text()
    assert '"debian/bookworm64"' in text
    assert 'ENV.fetch("WHARF_NODES", "2")' in text
    assert 'config.vm.define "control"' in text
    assert '"private_network"' in text
    assert 'type: "rsync"' in text  # the shared folder is the repository
    for script in re.findall(r'path: "([^"]+)"', text):
        assert (VAGRANT / script).is_file(), script
        assert os.access(VAGRANT / script, os.X_OK), script
    # The repository is the shared folder: no host virtualenv or caches in the VMs.
    for excluded in (".venv/", ".cache/", ".git/"):
        assert f'"{excluded}"' in text
    for rel in re.findall(rf"{GUEST_REPO}/([\w./-]+)", text):
        assert (ROOT / rel.rstrip("/")).exists(), rel


def test_provisioning_uses_the_setup_scripts() -> None:
    text = PROVISION.read_text()
    used = set(re.findall(r"\$WHARF_REPO/([\w./-]+)", text))
    for script in ("infra/setup.sh", "infra/rabbitmq.sh", "infra/up.sh", "infra/certs.sh",
                   "infra/images/seed.sh", "infra/cluster/forward.py", "infra/lib.sh"):
        assert script in used, script
    for rel in used:
        if rel.startswith(".venv/") or rel.startswith(".wharf/"):
            continue
        assert (ROOT / rel).exists(), rel
    # The variables provision.sh hands to those scripts are ones they read.
    scripts = {rel: (ROOT / rel).read_text() for rel in used if rel.startswith("infra/")}
    for var in re.findall(r"\b((?:WHARF_AMQP_HOST|CERT_DIR|CERT_HOSTS))=", text):
        assert any(f"${{{var}" in body for body in scripts.values()), var


def test_provisioned_daemon_and_gateway_settings_exist() -> None:
    text = PROVISION.read_text()
    # wharfd's environment file and command line.
    env_names = set(re.findall(r'"(WHARF_[A-Z_]+)=', text))
    assert {"WHARF_AMQP_URL", "WHARF_NODE_NAME", "WHARF_NODE_LABELS"} <= env_names
    assert env_names <= _settings_env(DaemonSettings), env_names - _settings_env(DaemonSettings)
    wharfd = re.search(r"^ExecStart=/usr/local/bin/wharfd (.*)$", text, re.M)
    gateway = re.search(r"^ExecStart=/usr/local/bin/wharf-gateway serve (.*)$", text, re.M)
    assert wharfd is not None and gateway is not None
    for line, command in ((wharfd, wharfd_main), (gateway, gateway_serve)):
        flags = set(re.findall(r"(?:^|\s)(--?[a-zA-Z][\w-]*)", line.group(1)))
        assert flags and flags <= _options(command), flags - _options(command)
    # The gateway reads its broker URL from the file infra/rabbitmq.sh writes.
    assert "WHARF_GATEWAY_AMQP_URL" in _settings_env(GatewaySettings)
    assert "WHARF_GATEWAY_AMQP_URL=" in (ROOT / "infra" / "rabbitmq.sh").read_text()


@needs_compose
def test_the_stack_has_no_default_passwords() -> None:
    out = _compose("config", "-q", passwords=False)
    assert out.returncode != 0 and "infra/dev-env.sh" in out.stderr, out.stderr


@pytest.mark.parametrize("script", [ENTRYPOINT, DEV_IMAGE / "rabbitmq-init.sh", PROVISION, SETUP,
                                    ROOT / "infra" / "amqp-accounts.sh",
                                    ROOT / "infra" / "dev-env.sh", ROOT / "infra" / "rabbitmq.sh"],
                         ids=lambda p: p.name)
def test_shell_scripts_parse(script: Path) -> None:
    out = subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("ruby") is None,
                    reason="ruby is not installed (not wanted here): the Vagrantfile's syntax "
                    "is checked only where ruby exists")
def test_vagrantfile_ruby_syntax() -> None:
    out = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], check=False, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
