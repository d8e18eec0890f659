"""Who may do what through the gateway: token scopes, the create policy (every rule), the
tokens file with scopes, and commands that belong to principals (per-principal idempotency
keys bound to the request, the store's migration to them)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from wharf.errors import Internal, InvalidArgument, PermissionDenied
from wharf.gateway import auth, schema
from wharf.gateway.app import main
from wharf.gateway.dispatch import Dispatcher, KeyReused, fingerprint
from wharf.gateway.policy import (
    RULES,
    Grant,
    Scope,
    check_create,
    check_payload,
    check_scope,
    may_see_command,
    parse_allow,
    parse_scope,
    required_scope,
    violations,
)
from wharf.gateway.store import ClusterStore
from wharf.protocol import (
    CommandEnvelope,
    ContainerPayload,
    CreatePayload,
    Heartbeat,
    Load,
    PullPayload,
    RunPayload,
)

READ, OPERATE, ADMIN = (Grant("r", Scope.READ), Grant("o", Scope.OPERATE),
                        Grant("a", Scope.ADMIN))


# --- scopes ---------------------------------------------------------------------------------


def test_scopes_include_the_ones_below() -> None:
    assert Scope.ADMIN.covers(Scope.OPERATE) and Scope.ADMIN.covers(Scope.READ)
    assert Scope.OPERATE.covers(Scope.READ) and not Scope.OPERATE.covers(Scope.ADMIN)
    assert not Scope.READ.covers(Scope.OPERATE)


@pytest.mark.parametrize(("method", "path", "needed"), [
    ("GET", "/v1/nodes", Scope.READ),
    ("GET", "/v1/nodes/n1", Scope.READ),
    ("GET", "/v1/events", Scope.READ),
    ("GET", "/v1/commands/abc", Scope.READ),
    ("GET", "/v1/nodes/n1/containers/web/logs", Scope.READ),
    ("GET", "/v1/nodes/n1/containers/web/stats", Scope.READ),
    ("HEAD", "/v1/containers", Scope.READ),
    ("POST", "/v1/nodes/n1/containers/run", Scope.OPERATE),
    ("POST", "/v1/nodes/node-2.b_c/containers/web/stop", Scope.OPERATE),
    ("DELETE", "/v1/nodes/n1/containers/web", Scope.OPERATE),
    ("POST", "/v1/containers", Scope.OPERATE),
    ("POST", "/v1/anything/new", Scope.OPERATE),  # not a read: operate at least
    ("POST", "/v1/images/pull", Scope.ADMIN),  # every node
    ("POST", "/v1/nodes/*/containers/run", Scope.ADMIN),
    ("DELETE", "/v1/nodes/*/images/busybox", Scope.ADMIN),
    ("GET", "/v1/nodes/*/containers/json", Scope.ADMIN),
    ("GET", "/v1/nodes/*", Scope.ADMIN),
    ("POST", "/v1/nodes/n[12]/containers/run", Scope.ADMIN),  # any pattern, not just *
])
def test_required_scope_by_method_and_path(method: str, path: str, needed: Scope) -> None:
    assert required_scope(method, path)[0] is needed


def test_a_scope_refusal_names_the_scope_needed() -> None:
    with pytest.raises(PermissionDenied, match="needs a token with scope 'operate'; token "
                       "'r' has scope 'read'"):
        check_scope(READ, "POST", "/v1/nodes/n1/containers/run")
    with pytest.raises(PermissionDenied, match=r"node pattern '\*' \(every node\) needs a "
                       "token with scope 'admin'"):
        check_scope(OPERATE, "POST", "/v1/nodes/*/containers/run")
    with pytest.raises(PermissionDenied, match="scope 'admin'"):
        check_scope(OPERATE, "POST", "/v1/images/pull")
    check_scope(READ, "GET", "/v1/containers")
    check_scope(OPERATE, "POST", "/v1/nodes/n1/containers/run")
    check_scope(ADMIN, "POST", "/v1/nodes/*/containers/run")


def test_a_command_is_its_principals_and_the_admins() -> None:
    assert may_see_command(Grant("bob", Scope.READ), "bob")
    assert not may_see_command(Grant("bob", Scope.OPERATE), "alice")
    assert may_see_command(Grant("root", Scope.ADMIN), "alice")


# --- the create policy: every rule ----------------------------------------------------------


def _host(**host: Any) -> dict[str, Any]:
    return {"Image": "busybox", "HostConfig": host}


RULE_CASES: list[tuple[dict[str, Any], str, str]] = [
    (_host(Privileged=True), "privileged", "--privileged"),
    (_host(Binds=["/:/host"]), "host-path", "-v /:/host"),
    (_host(Binds=["/etc:/x:ro"]), "host-path", "-v /etc:/x:ro"),
    (_host(Mounts=[{"Type": "bind", "Source": "/var", "Target": "/v"}]), "host-path",
     "--mount type=bind,source=/var"),
    (_host(Mounts=[{"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind",
                                                      "device": "/"}}}}]),
     "host-path", "--mount type=volume with driver options type=none,o=bind,device=/"),
    (_host(VolumesFrom=["other"]), "volumes-from", "--volumes-from other"),
    (_host(NetworkMode="host"), "host-network", "--network host"),
    (_host(PidMode="host"), "host-pid", "--pid host"),
    (_host(IpcMode="host"), "host-ipc", "--ipc host"),
    (_host(UTSMode="host"), "host-uts", "--uts host"),
    (_host(CgroupnsMode="host"), "host-cgroupns", "--cgroupns host"),
    (_host(UsernsMode="host"), "host-userns", "--userns host"),
    (_host(NetworkMode="container:web"), "shared-namespace", "--network container:web"),
    (_host(PidMode="container:web"), "shared-namespace", "--pid container:web"),
    (_host(IpcMode="container:web"), "shared-namespace", "--ipc container:web"),
    (_host(CapAdd=["NET_ADMIN"]), "cap-add", "--cap-add NET_ADMIN"),
    (_host(CapAdd="ALL"), "cap-add", "--cap-add ALL"),  # odd shapes count as set
    (_host(Devices=[{"PathOnHost": "/dev/sda"}]), "devices", "--device"),
    (_host(DeviceCgroupRules=["b *:* rwm"]), "devices", "--device-cgroup-rule"),
    (_host(DeviceRequests=[{"Count": -1}]), "devices", "--gpus"),
    (_host(SecurityOpt=["seccomp=unconfined"]), "security-opt",
     "--security-opt seccomp=unconfined"),
    (_host(SecurityOpt=["seccomp:unconfined"]), "security-opt",
     "--security-opt seccomp:unconfined"),
    (_host(SecurityOpt=["apparmor=unconfined"]), "security-opt",
     "--security-opt apparmor=unconfined"),
    (_host(SecurityOpt=["label=disable"]), "security-opt", "--security-opt label=disable"),
]


@pytest.mark.parametrize(("body", "rule", "flag"), RULE_CASES)
def test_each_rule_is_found_and_refused_for_operate(body: dict[str, Any], rule: str,
                                                    flag: str) -> None:
    found = violations(body)
    assert [(v.rule, v.flag) for v in found] == [(rule, flag)]
    with pytest.raises(PermissionDenied) as refused:
        check_create(OPERATE, body)
    assert refused.value.message == (f"policy: {flag} needs an admin token (or an operate "
                                     f"token created with --allow {rule})")
    check_create(ADMIN, body)  # admin: anything
    check_create(Grant("o", Scope.OPERATE, frozenset({rule})), body)  # allowed by name


def test_every_rule_has_a_case() -> None:
    assert {rule for _, rule, _ in RULE_CASES} == set(RULES)


def test_what_stays_in_the_sandbox_passes() -> None:
    fine = _host(Binds=["data:/data", "/anonymous"], NetworkMode="bridge", PidMode="",
                 CapDrop=["ALL"], CapAdd=[], Devices=[], Privileged=False,
                 SecurityOpt=["no-new-privileges", "no-new-privileges=true",
                              "no-new-privileges:false", "seccomp=builtin"],
                 Mounts=[{"Type": "volume", "Source": "v", "Target": "/v"},
                         {"Type": "tmpfs", "Target": "/t"},
                         {"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {
                             "Options": {"type": "tmpfs", "device": "tmpfs"}}}}])
    assert violations(fine) == []
    assert violations({"Image": "busybox"}) == []
    assert violations({"Image": "busybox", "HostConfig": "odd"}) == []  # wharfd refuses it
    check_create(OPERATE, fine)


def test_several_rules_are_named_at_once_and_an_allow_list_lets_only_its_rules_by() -> None:
    body = _host(Privileged=True, Binds=["/:/host"], NetworkMode="host")
    with pytest.raises(PermissionDenied, match=r"^policy: --privileged, -v /:/host, --network "
                       "host need an admin token .*--allow privileged,host-path,host-network"):
        check_create(OPERATE, body)
    some = Grant("o", Scope.OPERATE, frozenset({"privileged", "host-network"}))
    with pytest.raises(PermissionDenied, match=r"^policy: -v /:/host needs"):
        check_create(some, body)


def test_the_policy_applies_to_create_and_run_payloads_only() -> None:
    body = _host(Privileged=True)
    for payload in (RunPayload(create=body), CreatePayload(create=body)):
        with pytest.raises(PermissionDenied, match="--privileged"):
            check_payload(OPERATE, payload)
        check_payload(ADMIN, payload)
    check_payload(OPERATE, ContainerPayload(type="start", container="web"))
    check_payload(OPERATE, PullPayload(image="busybox"))


def test_scope_and_rule_names_are_checked() -> None:
    assert parse_scope("operate") is Scope.OPERATE
    with pytest.raises(InvalidArgument, match="unknown scope 'root'"):
        parse_scope("root")
    assert parse_allow(["privileged,host-path", " cap-add ", ""]) == \
        {"privileged", "host-path", "cap-add"}
    with pytest.raises(InvalidArgument, match="unknown policy rule 'everything'"):
        parse_allow(["privileged,everything"])


# --- the tokens file ------------------------------------------------------------------------


def test_a_token_carries_its_scope_and_allow_list(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    reader = auth.create_token(path, "reader", Scope.READ)
    ops = auth.create_token(path, "ops", Scope.OPERATE, ["privileged", "host-network"])
    plain = auth.create_token(path, "plain")  # operate unless told
    assert path.stat().st_mode & 0o777 == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert [line.split(" ", 1)[0] for line in lines] == ["ops", "plain", "reader"]
    assert lines[0].endswith(" scope=operate allow=host-network,privileged")
    assert lines[2].endswith(" scope=read")
    tokens = auth.Tokens(path)
    assert tokens.authenticate(f"Bearer {reader}") == Grant("reader", Scope.READ)
    assert tokens.authenticate(f"Bearer {ops}") == \
        Grant("ops", Scope.OPERATE, frozenset({"privileged", "host-network"}))
    assert tokens.authenticate(f"Bearer {plain}").scope is Scope.OPERATE
    for scope in (Scope.READ, Scope.ADMIN):
        with pytest.raises(InvalidArgument, match="--allow is for operate tokens"):
            auth.create_token(path, "x", scope, ["privileged"])
    with pytest.raises(InvalidArgument, match="unknown policy rule"):
        auth.create_token(path, "x", Scope.OPERATE, ["root"])


def test_a_line_without_a_scope_is_admin_with_one_warning_per_load(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    old, older = "wgt_old-token", "wgt_older-token"
    path.write_text(f"old sha256:{auth.digest(old)}\nolder sha256:{auth.digest(older)}\n")
    tokens = auth.Tokens(path)
    with caplog.at_level(logging.WARNING, logger="wharf.gateway.auth"):
        assert tokens.authenticate(f"Bearer {old}") == Grant("old", Scope.ADMIN)
        tokens.authenticate(f"Bearer {older}")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "2 token(s) without a scope count as admin: old, older" \
        in warnings[0]
    # rewriting the file (a new token) keeps the old lines as they were: still unscoped
    auth.create_token(path, "new", Scope.READ)
    assert f"old sha256:{auth.digest(old)}\n" in path.read_text()
    assert auth.read_tokens(path)["old"].scoped is False


@pytest.mark.parametrize(("line", "message"), [
    ("scope=root", "unknown scope 'root'"),
    ("scope=operate allow=everything", "unknown policy rule"),
    ("scope=read allow=privileged", "--allow is for operate tokens"),
    ("allow=privileged", "allow= needs scope=operate"),
    ("colour=blue", "expected 'NAME sha256:HEX scope="),
    ("scope=read scope=admin", "expected"),
])
def test_a_bad_scope_in_the_file_is_reported_with_its_line(tmp_path: Path, line: str,
                                                            message: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# c\nok sha256:{'0' * 64} scope=read\nbad sha256:{'1' * 64} {line}\n")
    with pytest.raises(InvalidArgument, match=f":3: {message}"):
        auth.read_tokens(path)


def test_token_create_and_ls_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    runner = CliRunner()
    for args in (["reader", "--scope", "read"], ["ops", "--allow", "privileged,cap-add"],
                 ["root", "--scope", "admin"]):
        made = runner.invoke(main, ["token", "create", *args, "--tokens-file", str(path)])
        assert made.exit_code == 0 and made.output.startswith("wgt_"), made.output
    with path.open("a") as out:
        out.write(f"legacy sha256:{'2' * 64}\n")
    bad = runner.invoke(main, ["token", "create", "x", "--scope", "root", "--tokens-file",
                               str(path)])
    assert bad.exit_code != 0 and "root" in bad.output
    listed = runner.invoke(main, ["token", "ls", "--tokens-file", str(path)]).output
    assert [line.split() for line in listed.splitlines()] == [
        ["NAME", "SCOPE", "ALLOW"], ["legacy", "admin", "(no", "scope", "in", "the", "file)"],
        ["ops", "operate", "cap-add,privileged"], ["reader", "read"], ["root", "admin"]]


def test_the_middleware_answers_403_naming_the_scope(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    reader = auth.create_token(path, "reader", Scope.READ)
    operator = auth.create_token(path, "ops", Scope.OPERATE)
    seen: list[Grant] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["state"]["grant"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=auth.BearerAuth(app, auth.Tokens(path)))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            def bearer(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}
            return [await client.get("/v1/containers", headers=bearer(reader)),
                    await client.post("/v1/nodes/n1/containers/run", headers=bearer(reader)),
                    await client.post("/v1/nodes/n1/containers/run", headers=bearer(operator)),
                    await client.post("/v1/nodes/*/containers/run", headers=bearer(operator))]

    replies = asyncio.run(scenario())
    assert [r.status_code for r in replies] == [200, 403, 200, 403]
    assert replies[1].json() == {"code": "permission_denied", "message": (
        "scope: POST /v1/nodes/n1/containers/run needs a token with scope 'operate'; token "
        "'reader' has scope 'read'")}
    assert replies[1].headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    assert "scope 'admin'" in replies[3].json()["message"]
    assert [g.name for g in seen] == ["reader", "ops"]


# --- commands belong to principals ----------------------------------------------------------


def test_the_fingerprint_is_the_request_but_how_to_answer() -> None:
    base = fingerprint("POST", "/v1/nodes/n1/containers/create", [("name", "a")], b"{}")
    assert base == fingerprint("POST", "/v1/nodes/n1/containers/create",
                               [("wait", "true"), ("name", "a"), ("deadline", "5")], b"{}")
    for other in (fingerprint("POST", "/v1/nodes/n2/containers/create", [("name", "a")], b"{}"),
                  fingerprint("POST", "/v1/nodes/n1/containers/create", [("name", "b")], b"{}"),
                  fingerprint("POST", "/v1/nodes/n1/containers/create", [("name", "a")], b"{ }"),
                  fingerprint("DELETE", "/v1/nodes/n1/containers/create", [("name", "a")],
                              b"{}")):
        assert other != base


def _dispatcher(tmp_path: Path) -> tuple[Dispatcher, list[CommandEnvelope]]:
    store = ClusterStore(tmp_path / "gw.db")
    now = datetime.now(UTC).timestamp()
    store.heartbeat(Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), version="0.1.0",
                              load=Load(containers=0, running=0, memory_total=1,
                                        memory_available=1, cpus=1, load1=0)), now=now)
    sent: list[CommandEnvelope] = []

    class Publisher:
        async def publish(self, envelope: CommandEnvelope) -> None:
            sent.append(envelope)

    return Dispatcher(store, Publisher(), gateway_id="gw", down_after=60), sent


def test_one_key_two_principals_two_commands_and_a_reused_key_is_a_422(tmp_path: Path) -> None:
    dispatcher, sent = _dispatcher(tmp_path)
    payload = ContainerPayload(type="start", container="web")

    async def submit(principal: str, request_hash: str) -> str:
        row = await dispatcher.submit("n1", payload, principal=principal, deadline=30,
                                      idempotency_key="k", request_hash=request_hash)
        return row.id

    alice = asyncio.run(submit("alice", "h1"))
    bob = asyncio.run(submit("bob", "h1"))
    assert alice != bob and [e.principal for e in sent] == ["alice", "bob"]
    assert asyncio.run(submit("alice", "h1")) == alice and len(sent) == 2  # a retry
    with pytest.raises(KeyReused, match="'k' was used for a different request") as reused:
        asyncio.run(submit("alice", "h2"))
    assert reused.value.http_status == 422 and reused.value.code == "unprocessable"
    assert len(sent) == 2
    store = dispatcher.store
    assert store.command_by_key("alice", "k").id == alice  # type: ignore[union-attr]
    assert store.command_by_key("carol", "k") is None
    store.close()


# --- the store's migration to per-principal keys --------------------------------------------


def test_a_database_from_before_versions_migrates_and_its_commands_keep_working(
        tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(schema.MIGRATIONS[0])  # what every gateway.db had, at user_version 0
    envelope = CommandEnvelope.new("n1", ContainerPayload(type="start", container="web"),
                                   principal="alice")
    db.execute("INSERT INTO commands (id, idempotency_key, principal, node, type, created_at,"
               " deadline, envelope, expected) VALUES (?,?,?,?,?,?,?,?,?)",
               (str(envelope.id), "old-key", "alice", "n1", "start", 1.0,
                envelope.deadline.timestamp(), envelope.model_dump_json(), '["n1"]'))
    db.close()
    store = ClusterStore(path)
    with store._lock:
        assert schema.version(store._db) == len(schema.MIGRATIONS) == 5
    old = store.command_by_key("alice", "old-key")
    assert old is not None and old.id == str(envelope.id) and old.request_hash is None
    assert store.command(old.id) == old
    # bob may use alice's old key; alice's old command answers any request (no fingerprint)
    bobs = CommandEnvelope.new("n1", ContainerPayload(type="start", container="web"),
                               principal="bob")
    assert store.add_command(bobs, ["n1"], "old-key", 2.0, "h").id == str(bobs.id)
    again = CommandEnvelope.new("n1", ContainerPayload(type="start", container="web"),
                                principal="alice")
    assert store.add_command(again, ["n1"], "old-key", 3.0, "h").id == str(envelope.id)
    store.close()
    reopened = ClusterStore(path)  # at the latest version: nothing runs again
    assert reopened.command_by_key("bob", "old-key") is not None
    reopened.close()


def test_migrations_apply_from_every_version_and_a_newer_database_is_refused(
        tmp_path: Path) -> None:
    for start in range(len(schema.MIGRATIONS) + 1):
        db = sqlite3.connect(tmp_path / f"s{start}.db", isolation_level=None)
        schema.migrate(db, tmp_path, target=start)
        assert schema.version(db) == start
        schema.migrate(db, tmp_path)
        assert schema.version(db) == len(schema.MIGRATIONS)
        db.close()
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(Internal, match="newer than this wharf-gateway"):
        ClusterStore(newer)


def test_a_failing_migration_keeps_the_old_version(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, "CREATE TABLE x (a);\nBROKEN;"])
    db = sqlite3.connect(tmp_path / "gw.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(db, tmp_path)
    assert schema.version(db) == len(schema.MIGRATIONS) - 1 and not db.in_transaction
    assert db.execute("SELECT name FROM sqlite_master WHERE name='x'").fetchone() is None
    db.close()
