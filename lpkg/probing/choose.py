"""Which way the probe runs: Docker, a local interpreter, or not at all (a warning in each report)."""

from __future__ import annotations

from lpkg.containers.emulation import emulation_problem
from lpkg.errors import EnvironmentProblem
from lpkg.probing.docker import DockerProber
from lpkg.probing.local import LocalProber, in_lambda_image
from lpkg.probing.request import NoProbe, Prober
from lpkg.report import notice
from lpkg.runtimes import (
    Arch,
    Runtime,
)


def not_emulated(arch: Arch, reason: str) -> NoProbe:
    return NoProbe(f"cannot run {arch} code here: {reason}",
                   f"Run lpkg where {arch} containers run (QEMU registered with binfmt_misc, with the F flag) "
                   "for the rest")


def _docker_prober(image: str, runtime: Runtime, arch: Arch) -> Prober | NoProbe:
    from lpkg.containers.engine import docker_session

    session = docker_session()
    problem = emulation_problem(session, arch)
    if problem is not None:
        return not_emulated(arch, problem)
    return DockerProber(image, runtime, arch, session=session)


def _local_prober(runtime: Runtime, arch: Arch) -> LocalProber | NoProbe:
    from lpkg.containers.emulation import host_arch

    here = host_arch()
    if here != arch:
        # A local interpreter runs this machine's CPU: it cannot load the zip's native code.
        return not_emulated(arch, f"a local python{runtime.minor} runs {here or 'another CPU'} code")
    return LocalProber(runtime)


def choose_prober(mode: str, runtime: Runtime, image: str, arch: Arch = "x86_64") -> Prober | NoProbe | None:
    """`auto`: Docker when a daemon answers, else a local interpreter (said on stderr), else no import test
    (a warning in each report). `none`: not asked for. Another CPU runs under emulation where this machine
    can; elsewhere there is no import test either."""
    if mode == "none":
        return None
    if mode == "docker":
        return _docker_prober(image, runtime, arch)
    if mode == "local":
        return _local_prober(runtime, arch)
    try:
        return _docker_prober(image, runtime, arch)
    except EnvironmentProblem as docker_problem:
        try:
            prober = _local_prober(runtime, arch)
        except EnvironmentProblem:
            reason = f"{docker_problem.message}, and there is no local python{runtime.minor}"
            notice(f"{reason}: the handler is not imported; static checks only")
            return NoProbe(reason)
        if isinstance(prober, NoProbe):
            notice(f"{docker_problem.message}, and {prober.reason}: the handler is not imported; static checks only")
            return NoProbe(f"{docker_problem.message}, and {prober.reason}", prober.remedy)
        if in_lambda_image(prober.interpreter, runtime):
            notice(f"{docker_problem.message}: importing the handler with this Lambda image's {prober.interpreter}"
                   " (NOT sandboxed)")
        else:
            notice(f"{docker_problem.message}: importing the handler with {prober.interpreter} instead, NOT sandboxed"
                   " and not on Lambda's OS")
        return prober
