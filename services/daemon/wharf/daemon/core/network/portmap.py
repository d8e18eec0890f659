"""NAT and forwarding rules through iptables (nf_tables backend on Debian 12), in wharf's chains.

Layout (``prefix`` is ``WHARF`` for the daemon, something else for tests):

| table  | chain              | jumped to from                      | holds                       |
|--------|--------------------|-------------------------------------|-----------------------------|
| nat    | PREFIX             | PREROUTING, OUTPUT (dst-type LOCAL) | one DNAT per published port |
| nat    | PREFIX-POSTROUTING | POSTROUTING                         | MASQUERADE per network      |
| filter | PREFIX-FORWARD     | FORWARD                             | ACCEPT/DROP per net, port   |

Every rule carries a comment: ``wharf:<container id>`` for a published port,
``wharf-net:<bridge>`` for a network's rules, so removal deletes exactly those rules. Changes go
through one ``iptables-save`` read and one ``iptables-restore --noflush`` batch per table, which
nf_tables applies atomically; re-applying deletes the owner's rules first, so nothing is
duplicated.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wharf.daemon.core.network.ports import ANY_IP, PortBinding
from wharf.errors import Internal

TABLES = ("nat", "filter")


@dataclass(frozen=True)
class BridgeNet:
    """What the rules of one network need to know."""

    bridge: str
    subnet: str
    internal: bool = False


class Chains:
    """wharf's chain names for one prefix (tests use their own prefix)."""

    def __init__(self, prefix: str = "WHARF") -> None:
        self.dnat = prefix
        self.postrouting = f"{prefix}-POSTROUTING"
        self.forward = f"{prefix}-FORWARD"

    def jumps(self) -> list[tuple[str, str]]:
        """(table, rule) that send traffic from the built-in chains into ours."""
        local = "-m addrtype --dst-type LOCAL"
        return [
            ("nat", f"-A PREROUTING {local} -j {self.dnat}"),
            ("nat", f"-A OUTPUT {local} -j {self.dnat}"),
            ("nat", f"-A POSTROUTING -j {self.postrouting}"),
            ("filter", f"-A FORWARD -j {self.forward}"),
        ]

    def owned(self) -> dict[str, tuple[str, ...]]:
        return {"nat": (self.dnat, self.postrouting), "filter": (self.forward,)}


def container_comment(container_id: str) -> str:
    return f"wharf:{container_id}"


def network_comment(bridge: str) -> str:
    return f"wharf-net:{bridge}"


def binding_rules(chains: Chains, binding: PortBinding) -> list[tuple[str, str]]:
    """The (table, rule) pairs that publish one binding (pure)."""
    tag = f"-m comment --comment {container_comment(binding.container_id)}"
    dest = "" if binding.host_ip == ANY_IP else f"-d {binding.host_ip}/32 "
    proto = f"-p {binding.proto} -m {binding.proto}"
    target = f"{binding.container_ip}:{binding.container_port}"
    return [
        ("nat", f"-A {chains.dnat} {dest}{proto} --dport {binding.host_port} {tag}"
                f" -j DNAT --to-destination {target}"),
        ("filter", f"-A {chains.forward} -d {binding.container_ip}/32 -o {binding.bridge}"
                   f" {proto} --dport {binding.container_port} {tag} -j ACCEPT"),
    ]


def network_rules(chains: Chains, net: BridgeNet) -> list[tuple[str, str]]:
    """The (table, rule) pairs of one bridge network (pure).

    Loopback sources are masqueraded onto the bridge, so that ``127.0.0.1:port`` DNATed to a
    container gets an answer (with route_localnet on the bridge). An internal network gets no
    outbound NAT and its traffic may not leave the bridge.
    """
    tag = f"-m comment --comment {network_comment(net.bridge)}"
    br = net.bridge
    rules = [("nat", f"-A {chains.postrouting} -s 127.0.0.0/8 -o {br} {tag} -j MASQUERADE")]
    if net.internal:
        return [
            *rules,
            ("filter", f"-A {chains.forward} -i {br} ! -o {br} {tag} -j DROP"),
            ("filter", f"-A {chains.forward} ! -i {br} -o {br} {tag} -j DROP"),
        ]
    return [
        *rules,
        ("nat", f"-A {chains.postrouting} -s {net.subnet} ! -o {br} {tag} -j MASQUERADE"),
        ("filter", f"-A {chains.forward} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED"
                   f" {tag} -j ACCEPT"),
        ("filter", f"-A {chains.forward} -i {br} {tag} -j ACCEPT"),
    ]


def comment_of(rule: str) -> str | None:
    """The ``--comment`` value of an iptables-save rule line."""
    words = shlex.split(rule)
    for i, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[i + 1]
    return None


def deletions(saved: str, chains: Sequence[str], comments: set[str]) -> list[str]:
    """``-D`` lines for every rule of ``chains`` in ``saved`` whose comment is in ``comments``."""
    out: list[str] = []
    for line in saved.splitlines():
        words = line.split(maxsplit=2)
        ours = len(words) == 3 and words[0] == "-A" and words[1] in chains
        if ours and comment_of(line) in comments:
            out.append("-D" + line[2:])
    return out


def restore_script(table: str, lines: Iterable[str]) -> str:
    body = "\n".join(lines)
    return f"*{table}\n{body}\nCOMMIT\n"


class PortMapper:
    """Applies the rules above through the iptables CLI (idempotent per owner)."""

    def __init__(self, prefix: str = "WHARF", iptables: str = "iptables") -> None:
        self.chains = Chains(prefix)
        self.iptables = iptables

    # --- the CLI -------------------------------------------------------------------------------

    def _run(self, args: list[str], stdin: str | None = None) -> str:
        proc = subprocess.run(
            args, input=stdin, capture_output=True, text=True, check=False, timeout=30
        )
        if proc.returncode != 0:
            raise Internal(f"{' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def save(self, table: str) -> str:
        return self._run([f"{self.iptables}-save", "-t", table])

    def _apply(self, table: str, lines: list[str]) -> None:
        if lines:
            self._run([f"{self.iptables}-restore", "-w", "--noflush"],
                      restore_script(table, lines))

    # --- chains --------------------------------------------------------------------------------

    def ensure_chains(self) -> None:
        """Create wharf's chains and the jumps into them, unless they exist."""
        for table in TABLES:
            saved = self.save(table)
            lines = [f":{c} - [0:0]" for c in self.chains.owned()[table]
                     if f":{c} " not in saved]
            existing = set(saved.splitlines())  # our jump rules are written as -save prints them
            lines += [rule for t, rule in self.chains.jumps()
                      if t == table and rule not in existing]
            self._apply(table, lines)

    def remove_chains(self) -> None:
        """Remove the jumps and wharf's chains with every rule in them (test and uninstall)."""
        for table in TABLES:
            saved = self.save(table)
            owned = self.chains.owned()[table]
            jumps = [rule for t, rule in self.chains.jumps() if t == table]
            lines = ["-D" + j[2:] for j in jumps if j in saved.splitlines()]
            present = [c for c in owned if f":{c} " in saved]
            lines += [f"-F {c}" for c in present] + [f"-X {c}" for c in present]
            self._apply(table, lines)

    # --- owners' rules -------------------------------------------------------------------------

    def _replace(self, comments: set[str], rules: list[tuple[str, str]]) -> None:
        for table in TABLES:
            saved = self.save(table)
            lines = deletions(saved, self.chains.owned()[table], comments)
            lines += [rule for t, rule in rules if t == table]
            self._apply(table, lines)

    def add(self, container_id: str, bindings: Sequence[PortBinding]) -> None:
        """Publish a container's ports (replacing any rules it had)."""
        rules = [r for b in bindings for r in binding_rules(self.chains, b)]
        self._replace({container_comment(container_id)}, rules)

    def remove(self, container_id: str) -> None:
        """Delete every rule of a container (nothing to delete is fine)."""
        self._replace({container_comment(container_id)}, [])

    def add_network(self, net: BridgeNet) -> None:
        """Install a network's NAT/forward rules (replacing any it had)."""
        self._replace({network_comment(net.bridge)}, network_rules(self.chains, net))

    def remove_network(self, bridge: str) -> None:
        self._replace({network_comment(bridge)}, [])

    def restore(self, networks: Sequence[BridgeNet], bindings: Sequence[PortBinding]) -> None:
        """Re-create every rule after a daemon restart, without duplicating any that survived."""
        self.ensure_chains()
        comments = {network_comment(n.bridge) for n in networks}
        comments |= {container_comment(b.container_id) for b in bindings}
        rules = [r for n in networks for r in network_rules(self.chains, n)]
        rules += [r for b in bindings for r in binding_rules(self.chains, b)]
        self._replace(comments, rules)

    def rules_of(self, container_id: str) -> list[str]:
        """The saved rule lines that belong to a container (for checks and tests)."""
        wanted = container_comment(container_id)
        return [line for table in TABLES for line in self.save(table).splitlines()
                if line.startswith("-A ") and comment_of(line) == wanted]
