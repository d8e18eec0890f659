"""The low-level container runtime layer: OCI config, rootfs, cgroups, seccomp, conmon + crun.

Everything here works on one container at a time and knows nothing of the API or the state
store; the engine composes it (see ``monitor.Runtime`` for the lifecycle contract).
"""
