"""docker-compose 1.29 (Debian's) drives wharfd as it drives dockerd: a project of two services
on the default network, a named volume, a published port and ``depends_on``: up -d, ps, service
names in DNS, logs, exec -T, and down -v leaving nothing behind (issue #16)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.gateway_fixture import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("docker-compose") is None,
                                 reason="docker-compose is not installed (make setup installs it)"),
              pytest.mark.skipif(shutil.which("docker") is None,
                                 reason="no docker CLI (make dockerd installs it)")]

COMPOSE_FILE = """\
version: "3.8"
services:
  db:
    image: busybox
    command: sh -c "echo db up; echo kept > /data/kept; exec sleep 300"
    stop_grace_period: 1s
    volumes:
      - data:/data
  web:
    image: busybox
    command: sh -c "echo hello from web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    stop_grace_period: 1s
    ports:
      - "127.0.0.1:{port}:8080"
    depends_on:
      - db
volumes:
  data:
"""


@pytest.fixture
def daemon(seeded_registry: SeededRegistry, tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "d", mirrors=[seeded_registry.registry.url]) as made:
        yield made


def _compose(daemon: Daemon, project: Path, *args: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "WHARF_"))},
           "DOCKER_HOST": f"unix://{daemon.socket}"}  # run and exec go through the docker
    # CLI, as they do for a user who has it (compose's own path races: dockerpty attaches
    # after the start, so a short command has exited and dockerd too answers 409)
    done = subprocess.run(["docker-compose", "--no-ansi", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    if check:
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr[-2000:]}"
    return done


def _listed(daemon: Daemon, what: str, project: str) -> list[str]:
    label = json.dumps({"label": [f"com.docker.compose.project={project}"]})
    path = {"containers": "/containers/json?all=1&filters=", "volumes": "/volumes?filters=",
            "networks": "/networks?filters="}[what] + urllib.request.quote(label)
    status, body = daemon.request("GET", path)
    assert status == 200
    data = json.loads(body)
    items = data["Volumes"] or [] if what == "volumes" else data
    return sorted(str(item.get("Name") or item["Names"][0]) for item in items)


def test_a_two_service_project_up_ps_dns_logs_exec_down(daemon: Daemon, tmp_path: Path) -> None:
    name = f"wc{uuid.uuid4().hex[:8]}"
    project = tmp_path / name
    project.mkdir()
    port = free_port()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    try:
        _compose(daemon, project, "up", "-d")
        rows = _compose(daemon, project, "ps").stdout.splitlines()[2:]
        assert sorted(r.split()[0] for r in rows) == [f"{name}_db_1", f"{name}_web_1"]
        assert all(" Up " in f"{r} " for r in rows), rows
        assert _listed(daemon, "containers", name) == [f"/{name}_db_1", f"/{name}_web_1"]
        assert _listed(daemon, "volumes", name) == [f"{name}_data"]
        assert _listed(daemon, "networks", name) == [f"{name}_default"]
        resolved = _compose(daemon, project, "exec", "-T", "web", "ping", "-c1", "-W2", "db")
        assert "1 packets received" in resolved.stdout
        assert "kept" in _compose(daemon, project, "exec", "-T", "db", "cat", "/data/kept").stdout
        logs = wait_for(lambda: _compose(daemon, project, "logs", "db").stdout
                        if "db up" in _compose(daemon, project, "logs", "db").stdout else "")
        assert "db up" in logs
        page = wait_for(lambda: _get(f"http://127.0.0.1:{port}/index.html"))
        assert page == "hello from web\n"
    finally:
        _compose(daemon, project, "down", "-v", check=False)
    for what in ("containers", "volumes", "networks"):
        assert _listed(daemon, what, name) == [], what


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback only
            return str(answer.read().decode())
    except OSError:
        return ""


HEALTHY_FILE = """\
version: "3.8"
services:
  db:
    image: busybox
    command: sh -c "touch /tmp/ready; exec sleep 300"
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 5
  web:
    image: busybox
    command: sh -c "exec sleep 300"
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
"""


def test_service_healthy_scale_run_and_restart(daemon: Daemon, tmp_path: Path) -> None:
    name = f"wc{uuid.uuid4().hex[:8]}"
    project = tmp_path / name
    project.mkdir()
    (project / "docker-compose.yml").write_text(HEALTHY_FILE)
    try:
        _compose(daemon, project, "up", "-d")  # web waits for db's health check
        rows = _compose(daemon, project, "ps").stdout
        assert "Up (healthy)" in rows
        _compose(daemon, project, "up", "-d", "--scale", "web=3")
        assert _listed(daemon, "containers", name) == [
            f"/{name}_db_1", f"/{name}_web_1", f"/{name}_web_2", f"/{name}_web_3"]
        ran = _compose(daemon, project, "run", "--rm", "web", "sh", "-c",
                       "echo from-run; ping -c1 -W2 db")
        assert "from-run" in ran.stdout and "1 packets received" in ran.stdout
        _compose(daemon, project, "restart", "db")
        assert "Up" in _compose(daemon, project, "ps", "db").stdout
    finally:
        _compose(daemon, project, "down", "-v", check=False)
    assert _listed(daemon, "containers", name) == []


BUILD_FILE = """\
version: "3.8"
services:
  app:
    build: ./app
    image: {image}
    command: sh -c "cat /built.txt; echo A=$$A; exec sleep 300"
    stop_grace_period: 1s
    environment:
      A: "{a}"
"""


def test_build_recreate_on_a_change_and_down_rmi(daemon: Daemon, tmp_path: Path) -> None:
    """compose build sends the context to wharfd's /build; a changed service is recreated (the
    old container renamed, a new one made, the old one removed); down --rmi all removes the
    built image."""
    name = f"wb{uuid.uuid4().hex[:8]}"
    project, image = tmp_path / name, f"{name}/app:1"
    (project / "app").mkdir(parents=True)
    (project / "app" / "Dockerfile").write_text(
        "FROM busybox\nRUN echo built-by-compose > /built.txt\n")
    (project / "docker-compose.yml").write_text(BUILD_FILE.format(image=image, a="1"))
    try:
        built = _compose(daemon, project, "build")
        assert f"Successfully tagged {image}" in built.stdout + built.stderr
        _compose(daemon, project, "up", "-d")
        first = _listed(daemon, "containers", name)
        wait_for(lambda: "A=1" in _compose(daemon, project, "logs").stdout)
        (project / "docker-compose.yml").write_text(BUILD_FILE.format(image=image, a="2"))
        recreated = _compose(daemon, project, "up", "-d")
        assert "Recreating" in recreated.stderr
        assert _listed(daemon, "containers", name) == first == [f"/{name}_app_1"]
        wait_for(lambda: "A=2" in _compose(daemon, project, "logs").stdout)
        logs = _compose(daemon, project, "logs").stdout
        assert "built-by-compose" in logs
        _compose(daemon, project, "down", "--rmi", "all", "-v")
        status, _ = daemon.request("GET", f"/images/{image}/json")
        assert status == 404
    finally:
        _compose(daemon, project, "down", "--rmi", "all", "-v", check=False)
    assert _listed(daemon, "containers", name) == []
