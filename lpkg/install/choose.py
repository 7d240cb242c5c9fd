"""Which installer a build uses: the build image through Docker, or pip here for the target platform."""

from __future__ import annotations

from lpkg.errors import EnvironmentProblem
from lpkg.install import Installer
from lpkg.report import notice
from lpkg.runtimes import Arch


def choose_installer(mode: str, build_image: str, arch: Arch = "x86_64") -> Installer:
    """auto: the build image through Docker when a daemon answers and can run the target CPU, else pip for the
    target platform's wheels."""
    from lpkg.install.local import LocalInstaller

    if mode == "local":
        return LocalInstaller()
    from lpkg.containers.emulation import emulation_problem
    from lpkg.containers.engine import docker_session
    from lpkg.install.docker import DockerInstaller

    try:
        session = docker_session()
    except EnvironmentProblem as problem:
        if mode == "docker":
            raise
        notice(f"{problem.message}: installing dependencies on this machine, for the runtime's platform "
               "(wheels only; --backend docker for the build image)")
        return LocalInstaller()
    emulation = emulation_problem(session, arch)
    if emulation is not None:
        if mode == "docker":
            raise EnvironmentProblem(f"cannot run the {arch} build image: {emulation}",
                                     hint="--backend local installs the runtime's binary wheels for that CPU")
        notice(f"cannot run the {arch} build image ({emulation}): installing dependencies with pip here, "
               "for the runtime's platform (wheels only)")
        return LocalInstaller()
    return DockerInstaller(session, build_image, arch)

