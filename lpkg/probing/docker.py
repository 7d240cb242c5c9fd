"""The probe in the Lambda runtime image through Docker, sandboxed: no network, non-root, root-owned task root,
memory, process and time limits. The sandbox policy is sandbox_options()."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lpkg.archive.members import record_added, store_limit
from lpkg.errors import EnvironmentProblem
from lpkg.probing.bytecode import BytecodeStore, KeyedBytecode, Offered, harvest, harvest_keyed, offer, offer_keyed
from lpkg.probing.request import (
    EMULATION_SLOWDOWN,
    GO_FILE,
    HOSTS_FILE,
    HOSTS_PATH,
    LAYER_DIR,
    PROBE_DIR,
    PROBE_ROOT,
    PYC_DIR,
    PYC_KEPT_DIR,
    PYC_KEPT_ROOT,
    PYC_ROOT,
    TASK_DIR,
    ProbeOutcome,
    ProbeRequest,
    ProbeRun,
    parse_document,
    write_probe,
)
from lpkg.runtimes import (
    LAYER_ROOT,
    PROBE_HOSTS,
    PROBE_MAX_PROCESSES,
    PROBE_MEMORY_MB,
    SANDBOX_USER,
    TASK_ROOT,
    TMP_ROOT,
    TMP_SIZE_MB,
    Arch,
    Runtime,
)

if TYPE_CHECKING:
    from lpkg.containers.engine import DockerSession, RunResult



def sandbox_options(memory_mb: int, read_only_root: bool = True, hosts_file: Path | None = None) -> dict[str, Any]:
    """Every limit the probe container runs under, in one place: no network; a non-root user without
    capabilities; a read-only root file system with only /tmp writable (a tmpfs of Lambda's size); memory
    without swap; a bound on processes, so a fork bomb fails at its fork instead of filling the host.

    `read_only_root=False` where the files must be copied in (a remote daemon): Docker refuses to copy into
    a read-only root. The copies are root-owned, so the sandbox user still cannot change them.

    With `hosts_file` (a daemon on this machine, which can bind-mount it at /etc/hosts) the network is
    disabled rather than "none": the container still gets a network namespace of its own with only a loopback
    (runc makes it), but Docker does not build its network sandbox for it, which took 60 to 70 ms of every
    probe's start (README: the small function). Docker then leaves /etc/hosts as the image has it, hence the
    file. The probe's entry refuses to run if it sees any interface but the loopback (--no-network)."""
    options: dict[str, Any] = {
        "entrypoint": [],
        "user": SANDBOX_USER,
        "network_mode": "none",
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "pids_limit": PROBE_MAX_PROCESSES,
        "working_dir": TASK_ROOT,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }
    if read_only_root:
        options["read_only"] = True
        options["tmpfs"] = {TMP_ROOT: f"rw,nosuid,nodev,mode=1777,size={TMP_SIZE_MB}m"}
    if hosts_file is not None:
        options["network_disabled"] = True
        options["volumes"] = {str(hosts_file): {"bind": HOSTS_PATH, "mode": "ro"}}
    return options



class DockerProber:
    # The task root is mounted read-only (or copied in, root-owned): the probe cannot write to the files
    # verify unpacked, so they may be hard links into the member store (lpkg.archive.members).
    task_root_read_only = True

    def __init__(self, image: str, runtime: Runtime, arch: Arch, memory_mb: int = PROBE_MEMORY_MB,
                 session: DockerSession | None = None) -> None:
        from lpkg.containers.engine import docker_session

        self.session = session or docker_session()
        self.image = image
        self.runtime = runtime
        self.platform = self.session.platform_for(arch)
        self.memory_mb = memory_mb
        self.session.ensure_image(image, self.platform)
        writable = f"read-only except {TMP_ROOT}" if self.session.is_local else "read-only task root"
        emulated = "" if self.platform is None else f", {arch} under emulation, time limits x{EMULATION_SLOWDOWN}"
        self.description = (f"docker:{image} (sandboxed: no network, user {SANDBOX_USER}, {writable}, "
                            f"{memory_mb} MB, at most {PROBE_MAX_PROCESSES} processes{emulated})")

    @contextlib.contextmanager
    def prepare(self, root: Path, request: ProbeRequest) -> Iterator[ProbeRun]:
        if self.platform is not None:
            request = dataclasses.replace(request, timeout=request.timeout * EMULATION_SLOWDOWN)
        write_probe(root, request)
        command = [self.runtime.interpreter, "-I", "-S", f"{PROBE_ROOT}/entry.py",
                   *request.entry_args(PROBE_ROOT, self.runtime.provided_modules),
                   "--memory-mb", str(self.memory_mb), "--lambda-path", json.dumps(self.runtime.sys_path()),
                   "--no-network"]
        hosts_file = None
        if self.session.is_local:
            hosts_file = root / PROBE_DIR / HOSTS_FILE
            hosts_file.write_text(PROBE_HOSTS, encoding="utf-8")
            hosts_file.chmod(0o644)
        options = sandbox_options(self.memory_mb, read_only_root=self.session.is_local, hosts_file=hosts_file)
        if self.platform is not None:
            options["platform"] = self.platform
        mounts = {TASK_DIR: TASK_ROOT, LAYER_DIR: LAYER_ROOT, PROBE_DIR: PROBE_ROOT}
        for rel in mounts:
            (root / rel).mkdir(parents=True, exist_ok=True)
            (root / rel).chmod(0o755)
        # A remote daemon does without the bytecode store: copying it in and out would cost what it saves.
        store = request.bytecode if self.session.is_local else None
        keyed = request.keyed_bytecode if self.session.is_local and store is None else None
        pyc = _bytecode_folders(root, store) if store is not None or keyed is not None else None
        if self.session.is_local:
            # Read-only bind mounts of lpkg's own scratch copy: no copying, and nothing can write back.
            options["volumes"].update({str(root / rel): {"bind": dest, "mode": "ro"} for rel, dest in mounts.items()})
        if pyc is not None:
            command += _mount_bytecode(options, *pyc)
        go = root / PROBE_DIR / GO_FILE
        if self.session.is_local:
            # Started now and waiting for the go file, so the container and its interpreter start while
            # the caller unpacks: the bind mounts show the files the moment they are written.
            command += ["--wait-for", f"{PROBE_ROOT}/{GO_FILE}"]
        # Leaving the block: the start and the offer (if still going) are waited for before the container is
        # removed and the scratch folder with it.
        with self.session.container(self.image, command, **options) as container, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="lpkg-probe") as helpers:
            # Starting takes the daemon a few hundred milliseconds: on a thread, beside the caller's unpacking;
            # so does offering the dependency bytecode (sweeping the store of what harvest would not write).
            started = helpers.submit(container.start) if self.session.is_local else None
            pending = helpers.submit(_offer_bytecode, store, *pyc) if store and pyc else None

            def run(on_running: Callable[[], None]) -> ProbeOutcome:
                offered = pending.result() if pending is not None else None
                if keyed is not None and pyc is not None:
                    offered = _offer_bytecode(keyed, *pyc)  # its keys are known once the zip is unpacked
                if started is not None:
                    started.result()  # the start's own error, if it failed
                    go.touch()
                else:
                    # A remote daemon cannot see this machine's folders: copy them in (root-owned, so the
                    # sandbox user cannot write to them either).
                    container.put_folders({dest: root / rel for rel, dest in mounts.items()})
                on_running()
                document = _document_of(container.run(request.wall_seconds), request.wall_seconds, self.image)
                description = self.description
                kept_in = store or keyed
                if kept_in is not None and offered is not None:
                    description += _harvest_bytecode(kept_in, offered, root / TASK_DIR, document)
                return ProbeOutcome(document, TASK_ROOT, LAYER_ROOT, False, description)

            yield run


def _document_of(result: RunResult, wall_seconds: float, image: str) -> dict[str, Any]:
    """The probe's report, or what its container's end says instead."""
    if result.timed_out:
        return {"import": {"status": "timeout", "seconds": wall_seconds}}
    if result.oom_killed or result.exit_code == 137:
        return {"import": {"status": "crashed", "returncode": 137, "output": "killed: out of memory"}}
    document = parse_document(result.stdout, result.stderr, image)
    network = document.get("network")
    if isinstance(network, dict) and network.get("isolated") is False:
        interfaces = ", ".join(str(i) for i in network.get("interfaces") or [])
        raise EnvironmentProblem(
            f"the probe's container from {image} had a network ({interfaces}): nothing was imported in it",
            hint="this Docker daemon did not give the container a network namespace of its own; "
            "the import test runs only without a network")
    return document


def _mount_bytecode(options: dict[str, Any], kept: Path, writable: Path) -> list[str]:
    """The kept bytecode read-only (the store's own files, or links to them), and an empty folder for what the
    import compiles: what the sandbox writes reaches the store only through harvest(). The entry's arguments."""
    options["volumes"][str(kept)] = {"bind": PYC_KEPT_ROOT, "mode": "ro"}
    options["volumes"][str(writable)] = {"bind": PYC_ROOT, "mode": "rw"}
    return ["--pycache", PYC_ROOT, "--pycache-kept", PYC_KEPT_ROOT]


def _bytecode_folders(root: Path, store: BytecodeStore | None) -> tuple[Path, Path] | None:
    """The probe's kept bytecode folder (the dependency store itself, or a folder for links to keyed bytecode)
    and its writable one, for any user (the sandbox's is not lpkg's)."""
    writable = root / PYC_DIR
    kept = store.folder if store is not None else root / PYC_KEPT_DIR
    try:
        kept.mkdir(parents=store is not None, exist_ok=store is not None)
        kept.chmod(0o755)
        writable.mkdir()
        writable.chmod(0o777)
    except OSError:
        return None  # no store this time: the import compiles everything, as without one
    return kept, writable


def _offer_bytecode(store: BytecodeStore | KeyedBytecode, kept: Path, writable: Path) -> Offered | None:
    try:
        return offer_keyed(store, kept, writable) if isinstance(store, KeyedBytecode) else offer(store, writable)
    except OSError:
        return None  # the import compiles what is missing, and nothing is kept


def _harvest_bytecode(store: BytecodeStore | KeyedBytecode, offered: Offered, task_root: Path,
                      document: dict[str, Any]) -> str:
    """Keep what the probe compiled; a few words for the probe's description."""
    facts = document.get("bytecode") or {}
    reused = frozenset(map(str, (document.get("import") or {}).get("bytecode_reused") or []))
    try:
        magic = bytes.fromhex(str(facts.get("magic")))
        cache_tag = str(facts["cache_tag"])
        if isinstance(store, KeyedBytecode):
            result, added = harvest_keyed(store, offered, task_root, magic, cache_tag, reused)
            record_added(store.folder, added, store_limit())
        else:
            result = harvest(store, offered, task_root, magic, cache_tag, reused)
    except (KeyError, ValueError, OSError):
        return ""  # the probe did not say what its bytecode looks like: keep nothing
    said = [f"{result.reused} reused"] if result.reused else []
    said += [f"{result.kept} compiled and kept"] if result.kept else []
    what = "bytecode kept by source content" if isinstance(store, KeyedBytecode) else "dependency bytecode"
    return f"; {what}: {', '.join(said)} (read-only at {PYC_KEPT_ROOT})" if said else ""

