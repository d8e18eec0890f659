"""The builder's pure parts: what each metadata instruction does to the config and how dockerd
names the step (checked against `docker history` of Docker 20.10's classic builder), the
cache key, the stages a target needs, and the file copies and upper-dir tidying of a step.
Then the image store's parent rules and the build cache over a real state store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wharf.daemon.core.build import steps
from wharf.daemon.core.build.cache import BuildCache
from wharf.daemon.core.build.dockerfile import parse
from wharf.daemon.core.build.expansion import expand
from wharf.daemon.core.build.files import copy_in, make_dirs, tidy_upper
from wharf.daemon.core.build.prepare import BuildRequest, needed_stages, normalise_tags, prepare
from wharf.daemon.core.build.stages import stages
from wharf.daemon.core.images.commit import NewImage, record_image
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.images.removal import remove
from wharf.daemon.core.images.store import ImageStore
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, InvalidArgument


def _apply(dockerfile_line: str, config: dict[str, object] | None = None,
           cmd_set: bool = False) -> tuple[steps.StageConfig, str]:
    instruction = parse(f"FROM busybox\n{dockerfile_line}\n").instructions[1]
    state = steps.StageConfig(dict(config or {}), cmd_set=cmd_set)
    return steps.apply(state, expand(instruction, {"A": "x"}))


def test_metadata_instructions_change_the_config_as_dockerd() -> None:
    new, message = _apply("ENV A=1 B=$A", {"Env": ["PATH=/bin", "A=0"]})
    assert new.config["Env"] == ["PATH=/bin", "A=1", "B=x"] and message == "ENV A=1 B=x"
    new, message = _apply('CMD ["sh"]')
    assert new.config["Cmd"] == ["sh"] and new.cmd_set and message == 'CMD ["sh"]'
    new, message = _apply("CMD echo hi")
    assert new.config["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert message == 'CMD ["/bin/sh" "-c" "echo hi"]'
    # ENTRYPOINT drops a CMD the stage did not set itself
    new, _ = _apply('ENTRYPOINT ["app"]', {"Cmd": ["base"]})
    assert new.config["Entrypoint"] == ["app"] and new.config["Cmd"] is None
    new, _ = _apply('ENTRYPOINT ["app"]', {"Cmd": ["mine"]}, cmd_set=True)
    assert new.config["Cmd"] == ["mine"]
    new, message = _apply("WORKDIR sub/$A", {"WorkingDir": "/app"})
    assert new.config["WorkingDir"] == "/app/sub/x" and message == "WORKDIR /app/sub/x"
    new, _ = _apply("EXPOSE 80 53/udp")
    assert new.config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    new, _ = _apply('SHELL ["/bin/bash", "-c"]')
    assert new.shell == ["/bin/bash", "-c"]
    new, _ = _apply("HEALTHCHECK --interval=5s --retries=2 CMD test -f /ok")
    assert new.config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -f /ok"],
                                         "Interval": 5_000_000_000, "Retries": 2}
    new, _ = _apply("ONBUILD RUN echo child")
    assert new.config["OnBuild"] == ["RUN echo child"]
    new, _ = _apply("MAINTAINER someone")
    assert new.author == "someone"


def test_steps_are_named_as_docker_history_shows_them() -> None:
    state = steps.StageConfig()
    assert " ".join(steps.created_by(state, "ENV A=x")) == "/bin/sh -c #(nop)  ENV A=x"
    assert " ".join(steps.created_by(state, "WORKDIR /app/x", joined=True)) == (
        "/bin/sh -c #(nop) WORKDIR /app/x")
    assert " ".join(steps.run_created_by(["/bin/sh", "-c", "echo hi $V"], ("V=1",))) == (
        "|1 V=1 /bin/sh -c echo hi $V")
    probe = steps.copy_created_by(state, "COPY", "sha256:ab", ["file"], ".")
    assert " ".join(probe) == "/bin/sh -c #(nop) COPY file:ab in . "
    assert "multi:ab" in steps.copy_created_by(state, "ADD", "sha256:ab", ["file", "dir"], "/")[-1]


def test_the_cache_key_changes_with_parent_step_config_and_inputs() -> None:
    key = steps.cache_key("sha256:p", ["a"], {"Env": ["A=1"]})
    assert key == steps.cache_key("sha256:p", ["a"], {"Env": ["A=1"]})
    assert len({key, steps.cache_key("sha256:q", ["a"], {"Env": ["A=1"]}),
                steps.cache_key("sha256:p", ["b"], {"Env": ["A=1"]}),
                steps.cache_key("sha256:p", ["a"], {"Env": ["A=2"]}),
                steps.cache_key("sha256:p", ["a"], {"Env": ["A=1"]}, "1000")}) == 5


def test_only_the_stages_the_target_needs_are_built(tmp_path: Path) -> None:
    plan = stages(parse("FROM busybox AS a\nFROM busybox AS b\nRUN x\nFROM b AS c\n"
                        "COPY --from=0 /x /y\nFROM busybox AS d\n"), target="c")
    assert needed_stages(plan) == (0, 1, 2)
    (tmp_path / "Dockerfile").write_text("FROM busybox AS a\nFROM busybox\nRUN true\n")
    prepared = prepare(tmp_path, BuildRequest(labels={"k": "v w"}))
    assert prepared.needed == (1,) and prepared.total_steps == 3
    label = prepared.stages[1].instructions[-1]
    assert label.original == "LABEL \"k\"='v w'"


def test_tags_are_normalised_and_checked() -> None:
    assert normalise_tags(["app", "app:latest", "r:5000/x:1"]) == (
        "docker.io/library/app:latest", "r:5000/x:1")
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        normalise_tags(["Bad:Name"])


def test_copy_in_follows_dockers_rules(tmp_path: Path) -> None:
    root, src = tmp_path / "root", tmp_path / "src"
    (root / "existing").mkdir(parents=True)
    os.chmod(root / "existing", 0o700)
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "sub" / "f").write_text("f")
    os.chmod(src / "dir" / "sub" / "f", 0o640)
    (src / "dir" / "link").symlink_to("sub/f")
    copy_in(root, src / "dir", "/a/b", owner=(5, 6), mode=None)
    assert (root / "a/b/sub/f").read_text() == "f"
    assert os.readlink(root / "a/b/link") == "sub/f"
    st = os.stat(root / "a/b/sub/f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (5, 6, 0o640)
    assert os.stat(root / "a").st_uid == 5  # a parent made for the copy belongs to it
    copy_in(root, src / "dir", "/existing", owner=(0, 0), mode=0o755)
    assert os.stat(root / "existing").st_mode & 0o777 == 0o700  # kept: it was there
    assert os.stat(root / "existing/sub/f").st_mode & 0o777 == 0o755
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        copy_in(root, src / "dir" / "sub" / "f", "/existing/sub", owner=(0, 0), mode=None)
    make_dirs(root, "/w/x/y")
    assert (root / "w/x/y").is_dir()


def test_tidy_upper_drops_what_the_runtime_made(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("")
    (upper / "new").mkdir()
    tidy_upper(upper, [lower], frozenset({"/etc/hosts"}))
    assert sorted(p.name for p in upper.iterdir()) == ["new"]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    state = StateStore(tmp_path / "state.db")
    state.open()
    return ImageStore(state, ContentStore(tmp_path / "content"), LayerStore(tmp_path / "layers"))


def _step(store: ImageStore, tmp: Path, parent: str | None, name: str) -> str:
    upper = tmp / f"upper-{name}"
    (upper / name).mkdir(parents=True)
    (upper / name / "f").write_text(name)
    image = NewImage(parent=store.get(parent) if parent else None, config={"Cmd": [name]},
                     history={"created_by": name})
    return record_image(store, tmp / "tmp", image, upper)


def test_parents_are_kept_by_their_children_and_go_with_them(store: ImageStore,
                                                             tmp_path: Path) -> None:
    first = _step(store, tmp_path, None, "one")
    second = _step(store, tmp_path, first, "two")
    third = _step(store, tmp_path, second, "three")
    store.tag(third, "docker.io/library/app:latest")
    assert store.get(third).parent == second and store.children(first) == [second]
    config = json.loads(store.get(third).config_raw)
    assert [h["created_by"] for h in config["history"]] == ["one", "two", "three"]
    with pytest.raises(Conflict, match="image has dependent child images"):
        remove(store, second)
    assert remove(store, "app").deleted == [third, second, first]
    assert store.list_images() == []


def test_the_build_cache_survives_and_is_pruned(store: ImageStore, tmp_path: Path) -> None:
    cache = BuildCache(store)
    first = _step(store, tmp_path, None, "one")
    second = _step(store, tmp_path, first, "two")
    cache.put("k1", first)
    cache.put("k2", second)
    assert BuildCache(store).get("k2") == second  # another instance: it is in the database
    assert [e.in_use for e in cache.entries()] == [False, False]
    store.tag(second, "docker.io/library/kept:latest")
    assert [e.in_use for e in cache.entries()] == [True, True]
    assert cache.prune().deleted == []
    result = cache.prune(everything=True)
    assert sorted(result.deleted) == ["k1", "k2"] and result.images == []  # still tagged
    remove(store, "kept")
    assert store.list_images() == [] and cache.get("k1") is None
