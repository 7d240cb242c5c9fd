"""`lpkg lock`: hash-pinned requirements for the target runtime, written by pip-tools' pip-compile.

pip-compile runs with the target interpreter inside the build image, so environment markers
(`python_version`, `platform_machine`, ...) evaluate as they will on Lambda. lpkg shells out to it there
(or, with `--backend local`, here, when this interpreter is the runtime's version on its architecture):
this module holds all of lpkg's knowledge of pip-tools — its version, its command line, its output.

The lock is `requirements.lock` in the function folder. Its first line records what it was made from: the
runtime, the architecture and a digest of the requirement inputs (the function's and its first-party
packages' requirements, with the .txt files beside them, and pyproject dependencies). `lpkg lock --check`
and `lpkg build` compare that digest with the inputs as they are now: a lock made from other inputs is stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lpkg.errors import BuildFailed, EnvironmentProblem, UsageError
from lpkg.files import owned_temporary_file
from lpkg.install.cache import requirements_fingerprint
from lpkg.install.lock_files import LOCK_FILE
from lpkg.runtimes import ARCHITECTURES, Arch, Runtime

if TYPE_CHECKING:
    from lpkg.install.docker import DockerInstaller

PIP_TOOLS_VERSION = "7.6.2"
PIP_VERSION = "26.3"  # pip-tools uses pip's internals: the pair is pinned together
INPUTS_MARK = "# lpkg-lock-inputs:"
COMPILE_COMMAND = "lpkg lock"  # what pip-compile's header tells a reader to run
OUTPUT_NAME = "requirements.lock"


@dataclass(frozen=True)
class LockInputs:
    """What a lock is made from."""

    requirement_files: tuple[Path, ...]
    dependencies: tuple[str, ...]  # requirement strings from a pyproject.toml
    runtime: Runtime
    arch: Arch

    @property
    def empty(self) -> bool:
        return not self.requirement_files and not self.dependencies

    def stamp(self) -> str:
        """The line's value: runtime, arch and a digest of the requirement inputs' bytes."""
        facts = {"files": [requirements_fingerprint(p, projects=False) for p in self.requirement_files],
                 "dependencies": list(self.dependencies)}
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
        return f"{self.runtime.name} {self.arch} sha256:{digest}"


@dataclass(frozen=True)
class LockFile:
    path: Path
    stamp: str | None  # the recorded INPUTS_MARK value; None when the file has none (not written by lpkg)
    hashed: bool  # every requirement carries --hash: install with --require-hashes
    pins: int


@dataclass(frozen=True)
class LockOutcome:
    function: str
    path: Path | None  # None: nothing to lock
    status: str  # "written", "unchanged", "fresh", "stale", "missing", "nothing to lock"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status not in ("stale", "missing")


def lock_path(function_dir: Path) -> Path:
    return function_dir / LOCK_FILE


def read_lock(path: Path) -> LockFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the lock ({exc})") from None
    stamp = None
    requirements: list[str] = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith(INPUTS_MARK):
            stamp = line[len(INPUTS_MARK):].strip()
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")):
            requirements.append(stripped)
    hashed = bool(requirements) and all("--hash=" in r for r in requirements)
    return LockFile(path, stamp, hashed, len(requirements))


def staleness(lock: LockFile, inputs: LockInputs) -> str | None:
    """None when `lock` was made from exactly `inputs`, else why not."""
    if lock.stamp is None:
        return f"{lock.path.name} has no '{INPUTS_MARK}' line: it was not written by lpkg lock"
    expected = inputs.stamp()
    if lock.stamp == expected:
        return None
    recorded_target = lock.stamp.split(" sha256:")[0]
    expected_target = expected.split(" sha256:")[0]
    if recorded_target != expected_target:
        return f"{lock.path.name} is for {recorded_target}, not {expected_target}"
    return f"the requirements changed since {lock.path.name} was written"


def check(function: str, function_dir: Path, inputs: LockInputs) -> LockOutcome:
    path = lock_path(function_dir)
    if not path.is_file():
        if inputs.empty:
            return LockOutcome(function, None, "nothing to lock", "no requirements")
        return LockOutcome(function, path, "missing", f"no {LOCK_FILE}: run lpkg lock {function_dir}")
    why = staleness(read_lock(path), inputs)
    if why is not None:
        return LockOutcome(function, path, "stale", f"{why}: run lpkg lock {function_dir}")
    return LockOutcome(function, path, "fresh")


def stage_inputs(inputs: LockInputs, function: str, folder: Path) -> list[str]:
    """Copy each requirements file (with the .txt files beside it, for `-r` lines) into a subfolder named
    after its folder, so pip-compile's `# via -r shared/requirements.txt` annotations read well."""
    staged: list[str] = []
    used: set[str] = set()
    for path in inputs.requirement_files:
        if not path.is_file():
            raise UsageError(f"{path}: requirements file not found")
        label = path.parent.name or "requirements"
        while label in used:
            label += "_"
        used.add(label)
        (folder / label).mkdir(parents=True)
        for sibling in {path, *path.parent.glob("*.txt")}:
            shutil.copyfile(sibling, folder / label / sibling.name)
        staged.append(f"{label}/{path.name}")
    if inputs.dependencies:
        name = f"{function}-pyproject-dependencies.txt"
        (folder / name).write_text("\n".join(inputs.dependencies) + "\n", encoding="utf-8")
        staged.append(name)
    return staged


def compile_args(staged: Sequence[str], output: str) -> list[str]:
    """pip-compile's options: hashes for --require-hashes installs; build tools pinned too (a package that
    needs setuptools at run time would otherwise be left unhashed); nothing of this machine's index settings."""
    return ["-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--no-emit-index-url", "--no-emit-trusted-host", "--output-file", output, *staged]


def tools_folder(cache: str, runtime: Runtime, arch: Arch) -> str:
    return f"{cache}/tools/pip-tools-{PIP_TOOLS_VERSION}-pip-{PIP_VERSION}-{runtime.name}-{arch}"


def container_script(runtime: Runtime, arch: Arch, cache: str, inputs_dir: str, output_dir: str,
                     staged: Sequence[str]) -> str:
    """The shell script the build container runs: install pip-tools once into the cache volume (in a
    temporary folder renamed into place, so concurrent runs never see half an install), then pip-compile.
    An existing lock staged as previous.lock is the starting point: pins stay unless an input changed."""
    import shlex

    python = shlex.quote(runtime.interpreter)
    tools = tools_folder(cache, runtime, arch)
    output = f"{output_dir}/{OUTPUT_NAME}"
    return "\n".join([
        "set -e",
        f"tools={shlex.quote(tools)}",
        'if [ ! -d "$tools" ]; then',
        f'  {python} -m pip install --quiet --target "$tools.$$" pip-tools=={PIP_TOOLS_VERSION} pip=={PIP_VERSION}',
        '  mv -T "$tools.$$" "$tools" 2>/dev/null || rm -rf "$tools.$$"',
        "fi",
        f"mkdir -p {shlex.quote(output_dir)}",
        f"if [ -f previous.lock ]; then cp previous.lock {shlex.quote(output)}; fi",
        f'CUSTOM_COMPILE_COMMAND="{COMPILE_COMMAND}" PYTHONPATH="$tools" {python} '
        + shlex.join([*compile_args(staged, output), "--cache-dir", f"{cache}/pip-tools"]),
    ])


def write_lock(path: Path, inputs: LockInputs, compiled: str) -> bool:
    """Write the lock (atomically) with its inputs line on top; False when the content is unchanged."""
    text = f"{INPUTS_MARK} {inputs.stamp()}\n" + "".join(
        line + "\n" for line in compiled.splitlines() if not line.startswith(INPUTS_MARK)
    )
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    fd, temp = owned_temporary_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return True


def compile_locally(inputs: LockInputs, function: str, previous: Path | None) -> str:
    """pip-compile with this interpreter: only right when it is the runtime's version on its architecture
    (inside the SAM build image of a CDK bundling step, say)."""
    import platform
    import subprocess

    machine = ARCHITECTURES[inputs.arch].machine
    if sys.version_info[:2] != inputs.runtime.version or platform.machine() != machine \
            or not sys.platform.startswith("linux"):
        raise EnvironmentProblem(
            f"lpkg lock without Docker needs to run on {inputs.runtime.name} on Linux {inputs.arch} "
            f"(markers are evaluated by the interpreter that locks); this is Python "
            f"{sys.version_info[0]}.{sys.version_info[1]} on {sys.platform} {platform.machine()}",
            hint="start Docker (the build image runs pip-compile), or run lpkg lock inside the build image",
        )
    with tempfile.TemporaryDirectory(prefix="lpkg-lock-") as scratch:
        staged = stage_inputs(inputs, function, Path(scratch))
        output = Path(scratch) / "out" / OUTPUT_NAME
        output.parent.mkdir()
        if previous is not None:
            shutil.copyfile(previous, output)
        env = {**os.environ, "CUSTOM_COMPILE_COMMAND": COMPILE_COMMAND}
        proc = subprocess.run([sys.executable, *compile_args(staged, str(output))], cwd=scratch, env=env,
                              stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            if "No module named piptools" in proc.stderr:
                raise EnvironmentProblem("lpkg lock without Docker needs pip-tools installed beside lpkg",
                                         hint=f"pip install pip-tools=={PIP_TOOLS_VERSION} pip=={PIP_VERSION}")
            raise BuildFailed("pip-compile failed:\n    " + "\n    ".join(proc.stderr.strip().splitlines()[-8:]),
                              hint="check the requirement names and versions")
        return output.read_text(encoding="utf-8")


def compile_in_image(installer: DockerInstaller, inputs: LockInputs, function: str, previous: Path | None) -> str:
    """pip-compile in the build image; returns the lock it wrote."""
    from lpkg.install.docker import CACHE, INPUT, OUTPUT

    with tempfile.TemporaryDirectory(prefix="lpkg-lock-") as scratch, \
            tempfile.TemporaryDirectory(prefix="lpkg-lock-out-") as out:
        staged = stage_inputs(inputs, function, Path(scratch))
        if previous is not None:
            shutil.copyfile(previous, Path(scratch) / "previous.lock")
        script = container_script(inputs.runtime, inputs.arch, CACHE, INPUT, OUTPUT, staged)
        installer.run(["/bin/sh", "-c", script], Path(scratch), Path(out), what="pip-compile")
        try:
            return (Path(out) / OUTPUT_NAME).read_text(encoding="utf-8")
        except OSError:
            raise BuildFailed(f"pip-compile in {installer.image} wrote no lock") from None
