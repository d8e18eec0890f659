"""RUN: the command in a container of the step's image, its changes the step's layer.

The container gets the stage's config (env with the build args in effect, user, working
directory), the command with its shell and no entrypoint, no health check, and the build's
network (``networkmode``; the default bridge otherwise). Its output is streamed as the classic
builder streams it (stderr between ``ESC[91m`` and ``ESC[0m``). A non-zero exit fails the build
with dockerd's message. The container's overlay upper dir, tidied (``files.tidy_upper``),
becomes the layer; a RUN that changed nothing adds an ``empty_layer`` history entry only.

The step's container is removed when the step ends, whether it worked or not (dockerd keeps a
failed step's container unless ``--force-rm``; wharf leaves nothing behind a failed build).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from wharf.daemon.core.build import steps
from wharf.daemon.core.build.files import tidy_upper
from wharf.daemon.core.build.instructions import Run
from wharf.daemon.core.build.work import in_thread, record_step
from wharf.daemon.core.containers.changes import RUNTIME_MOUNT_POINTS
from wharf.daemon.core.containers.records import ContainerRecord
from wharf.errors import Internal, InvalidArgument, WharfError

if TYPE_CHECKING:
    from wharf.daemon.core.build.builder import Builder, StageState

_RED, _RESET = "\x1b[91m", "\x1b[0m"


class StepFailed(Internal):
    """A RUN that exited non-zero: dockerd's message, and its exit code for errorDetail."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def run_step(builder: Builder, state: StageState, instruction: Run) -> None:
    argv = state.config.argv(instruction)
    build_args = state.scope.cache_args()
    probe = steps.run_created_by(argv, build_args)
    new = steps.StageConfig(dict(state.config.config), state.config.author,
                            state.config.cmd_set)

    async def make() -> str:
        if state.image is None:
            raise InvalidArgument(f"cannot RUN {' '.join(argv)!r} in an empty stage (FROM "
                                  "scratch with nothing copied in yet)")
        return await _run(builder, state, argv, probe)
    await builder.commit(state, new, probe, make=make)


async def _run(builder: Builder, state: StageState, argv: list[str], probe: list[str]) -> str:
    containers = builder.containers
    config = state.config.config
    run_env = [f"{k}={v}" for k, v in state.scope.run_args().items()]
    assert state.image is not None
    body = {
        "Image": state.image.id, "Cmd": argv, "Entrypoint": [""],
        "Env": [*(config.get("Env") or []), *run_env],
        "User": config.get("User") or "", "WorkingDir": config.get("WorkingDir") or "",
        "Labels": {}, "Healthcheck": {"Test": ["NONE"]},
        "HostConfig": {"NetworkMode": builder.request.network_mode or "default"},
    }
    record = await in_thread(containers.create, body, None)
    try:
        await builder.say(f" ---> Running in {record.id[:12]}\n")
        await containers.start(record.id)
        await _stream_output(builder, record)
        code = await containers.wait(record.id)
        if code != 0:
            raise StepFailed(f"The command '{' '.join(argv)}' returned a non-zero code: "
                             f"{code}", code)
        image_id = await in_thread(_commit, builder, state, record, probe)
        if builder.request.remove or builder.request.force_remove:
            await builder.say(f"Removing intermediate container {record.id[:12]}\n")
        return image_id
    finally:
        await asyncio.shield(_remove(builder, record))


async def _stream_output(builder: Builder, record: ContainerRecord) -> None:
    async for entry in builder.containers.follow_logs(record, stdout=True, stderr=True):
        text = entry.data.decode("utf-8", "replace")
        await builder.say(f"{_RED}{text}{_RESET}" if entry.stream == "stderr" else text)


def _commit(builder: Builder, state: StageState, record: ContainerRecord,
            probe: list[str]) -> str:
    images = builder.images
    assert state.image is not None
    upper = builder.containers.upper_dir(record)
    lowers = [images.store.layers.diff_path(c) for c in reversed(state.image.chain_ids)]
    tidy_upper(upper, lowers, RUNTIME_MOUNT_POINTS)
    return record_step(images, state.image, state.config, probe, upper, container_id=record.id,
                       skip=RUNTIME_MOUNT_POINTS)


async def _remove(builder: Builder, record: ContainerRecord) -> None:
    """The step's container goes, running or not (a cancelled build kills it)."""
    with contextlib.suppress(WharfError):
        await builder.containers.remove(record.id, force=True, volumes=True)
