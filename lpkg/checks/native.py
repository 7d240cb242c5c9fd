"""Native code that cannot load on the target runtime: wrong OS, wrong CPU, glibc too new,
wrong CPython, or a shared library that is nowhere the dynamic loader will look.

The loader's view is rebuilt from the zip names: the function is unpacked at /var/task, the
layers at /opt, and everything else comes from the runtime image (`Runtime.system_libraries`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lpkg.archive.reader import normalized_name
from lpkg.checks import CheckContext, NativeFile
from lpkg.checks.elf import NativeFacts
from lpkg.checks.native_facts import FileFacts, facts_of_all
from lpkg.report import Finding, Severity
from lpkg.runtimes import ARCH_ALIASES, ARCHITECTURES, LAYER_ROOT, RUNTIMES, TASK_ROOT, Runtime

NOT_LINUX = "NATIVE_NOT_LINUX"
WRONG_ARCH = "NATIVE_WRONG_ARCH"
GLIBC_TOO_NEW = "NATIVE_GLIBC_TOO_NEW"
WRONG_PYTHON = "NATIVE_WRONG_PYTHON"
MISSING_LIBRARY = "NATIVE_MISSING_LIBRARY"
UNREADABLE = "NATIVE_UNREADABLE"

# foo.so, foo.pyd, foo.dylib, and versioned libfoo.so.1.2
_NATIVE_NAME = re.compile(r"\.(?:so(?:\.\d+)*|pyd|dylib)$")
# The tag between module name and ".so": cpython-312-x86_64-linux-gnu, cpython-313t-..., pypy39-pp73-...
_EXTENSION_TAG = re.compile(r"\.(?P<tag>(?:cpython|pypy)[^.]*)\.so$")
_CPYTHON_TAG = re.compile(r"^cpython-(?P<major>\d)(?P<minor>\d+)(?P<flags>[a-z]*)(?:-(?P<platform>.+))?$")

# The loader searches LD_LIBRARY_PATH; these are its entries that lpkg can see into (the rest is the image).
_VISIBLE_LIBRARY_PATH = (TASK_ROOT, f"{TASK_ROOT}/lib", f"{LAYER_ROOT}/lib")

_MACHINE_LABEL = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "arm64/aarch64",
    "EM_386": "32-bit x86",
    "EM_ARM": "32-bit ARM",
    "EM_PPC64": "POWER (ppc64)",
    "EM_S390": "s390x",
    "EM_RISCV": "RISC-V",
}

# Libraries that manylinux lets a wheel assume but the Lambda image lacks, and what to do instead.
_LIBRARY_ADVICE = {
    "libpq.so.5": "use psycopg2-binary or psycopg[binary], whose wheels bundle it; or ",
    "libGL.so.1": "use opencv-python-headless, which does not need it; or ",
}


def is_native_name(name: str) -> bool:
    return bool(_NATIVE_NAME.search(name))


def check_native(files: Sequence[NativeFile], ctx: CheckContext, store: Path | None = None) -> list[Finding]:
    """The findings of each native file; with `store` (verify's member store), the files' facts are kept there by
    content (lpkg.checks.native_facts)."""
    tree = _LoaderTree.of(ctx)
    natives = [native for native in files if is_native_name(native.member)]
    all_facts = facts_of_all(natives, store)
    loaded = _loaded_by_imports(natives, all_facts, ctx, tree)
    findings: list[Finding] = []
    for native, facts in zip(natives, all_facts, strict=True):
        findings.extend(_check_file(native, facts, ctx, tree, _path_of(native) in loaded))
    return findings


def _path_of(native: NativeFile) -> str:
    return posixpath.join(LAYER_ROOT if native.in_layer else TASK_ROOT, normalized_name(native.member))


def _loaded_by_imports(natives: Sequence[NativeFile], all_facts: Sequence[FileFacts], ctx: CheckContext,
                       tree: _LoaderTree) -> set[str]:
    """The native files an import can make the dynamic loader load: the extension modules, and what their
    DT_NEEDED entries resolve to in the zip and layers, transitively. The rest (a library's plugins, such as
    mysql-connector-python's authentication plugins, loaded with dlopen only when that feature is used, and
    the libraries only they need) loads only if something asks for it by name."""
    facts_at = {_path_of(native): facts.native for native, facts in zip(natives, all_facts, strict=True)}
    package_dirs = {posixpath.dirname(p) for p in tree.paths if p.endswith("/__init__.py")}
    import_roots = {TASK_ROOT, *(posixpath.join(LAYER_ROOT, path) for path in ctx.runtime.layer_paths())}
    pending = [path for path in facts_at if _is_extension_module(path, package_dirs | import_roots)]
    loaded: set[str] = set()
    while pending:
        path = pending.pop()
        if path in loaded:
            continue
        loaded.add(path)
        facts = facts_at[path]
        for name in facts.needed:
            found = tree.resolve(path, facts, name)
            if found in facts_at:
                pending.append(found)
    return loaded


def _is_extension_module(path: str, import_dirs: set[str]) -> bool:
    """foo.cpython-312-x86_64-linux-gnu.so, foo.abi3.so anywhere; a plain foo.so (or .pyd) in a package or at an
    import root, where `import foo` would find it."""
    basename = posixpath.basename(path)
    if _EXTENSION_TAG.search(basename) or basename.endswith(".abi3.so"):
        return True
    stem, dot, suffix = basename.partition(".")
    return bool(dot) and suffix in ("so", "pyd") and stem.isidentifier() and posixpath.dirname(path) in import_dirs


@dataclass(frozen=True)
class _LoaderTree:
    """The files the dynamic loader can find at run time, as absolute paths."""

    paths: frozenset[str]
    libs_dirs: tuple[str, ...]  # auditwheel-style "<pkg>.libs" folders at the top of an import root

    @staticmethod
    def of(ctx: CheckContext) -> _LoaderTree:
        task = list(ctx.archive.paths)
        opt = [n for layer in ctx.layers for n in layer.archive.paths]
        paths = frozenset(
            [posixpath.join(TASK_ROOT, n) for n in task if n]
            + [posixpath.join(LAYER_ROOT, n) for n in opt if n]
        )
        roots = [TASK_ROOT, *(posixpath.join(LAYER_ROOT, path) for path in ctx.runtime.layer_paths())]
        libs_dirs = sorted(
            {
                posixpath.dirname(p)
                for p in paths
                if posixpath.dirname(p).endswith(".libs") and posixpath.dirname(posixpath.dirname(p)) in roots
            }
        )
        return _LoaderTree(paths, tuple(libs_dirs))

    def search_dirs(self, path: str, facts: NativeFacts) -> list[str]:
        origin = posixpath.dirname(path)
        # Lenient on purpose: the file's own folder and every *.libs folder count even without an
        # rpath naming them, so the host side does not cry wolf; the probe's real import is the judge.
        dirs = [origin]
        for entry in (*facts.rpath, *facts.runpath):
            expanded = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            if "$" in expanded:  # $LIB, $PLATFORM: depend on the image, not on the zip
                continue
            # A relative entry is relative to the working directory, which is the task root.
            dirs.append(posixpath.normpath(posixpath.join(TASK_ROOT, expanded)))
        return [*dirs, *_VISIBLE_LIBRARY_PATH, *self.libs_dirs]

    def resolve(self, path: str, facts: NativeFacts, name: str) -> str | None:
        """Where the loader finds DT_NEEDED `name` of the file at `path` in the zip or its layers, if anywhere."""
        return next((found for d in self.search_dirs(path, facts) if (found := posixpath.join(d, name)) in self.paths),
                    None)


def _check_file(native: NativeFile, file_facts: FileFacts, ctx: CheckContext, tree: _LoaderTree,
                loaded: bool) -> list[Finding]:
    """`loaded`: an import can load this file (_loaded_by_imports); what it needs from the system is then an
    error, else a warning (it fails only if something loads it by name)."""
    facts = file_facts.native
    basename = posixpath.basename(normalized_name(native.member))

    def finding(code: str, message: str, severity: Severity = Severity.ERROR) -> Finding:
        return Finding(code, severity, message, member=native.member, distribution=native.distribution)

    fallback = _unloadable_with_fallback(native, basename, ctx, tree)
    if facts.kind in ("macho", "pe"):
        message, severity = _not_linux(facts, basename, ctx)
        if fallback is not None:
            message, severity = message + fallback, Severity.WARNING
        return [finding(NOT_LINUX, message, severity)]
    if facts.kind == "unknown":
        if file_facts.ld_script:
            return []
        message = "is not a shared library (no ELF header): Lambda cannot load it"
        return [finding(UNREADABLE, message, Severity.WARNING)]

    out: list[Finding] = []
    if facts.error is not None:
        out.append(
            finding(
                UNREADABLE,
                f"has a damaged ELF structure ({facts.error}); the other checks used only what could be read",
                Severity.WARNING,
            )
        )
    ext_tag = m["tag"] if (m := _EXTENSION_TAG.search(basename)) else None
    tag = _CPYTHON_TAG.match(ext_tag) if ext_tag else None
    wrong_arch = _wrong_arch(facts, tag, ctx)
    if wrong_arch is not None:
        out.append(finding(WRONG_ARCH, wrong_arch))
    wrong_python = _wrong_python(ext_tag, tag, ctx)
    if wrong_python is not None and fallback is not None:
        out.append(finding(WRONG_PYTHON, wrong_python + fallback, Severity.WARNING))
    elif wrong_python is not None:
        out.append(finding(WRONG_PYTHON, wrong_python))
    if wrong_arch is not None:
        return out  # code for another CPU: its glibc needs and libraries would be the wrong question
    severity = Severity.ERROR if loaded else Severity.WARNING
    unloaded = "" if loaded else (
        "; no extension module loads it (a plugin, or a library only plugins need): it fails only if something "
        "loads it by name, as a library loads a plugin for a feature")
    glibc = _glibc_too_new(facts, native, ctx)
    if glibc is not None:
        out.append(finding(GLIBC_TOO_NEW, glibc + unloaded, severity))
    out.extend(finding(MISSING_LIBRARY, msg + unloaded, severity)
               for msg in _missing_libraries(_path_of(native), facts, ctx.runtime, tree))
    return out


def _unloadable_with_fallback(native: NativeFile, basename: str, ctx: CheckContext, tree: _LoaderTree) -> str | None:
    """What to add to a finding about an extension module the runtime's import system never picks, because its
    name is for another platform or Python (md.cpython-39-darwin.so on Linux's Python 3.11 looks only for
    md.cpython-311-x86_64-linux-gnu.so, md.abi3.so and md.so), when the pure-Python module it speeds up is
    beside it (md.py): that one is imported instead, as charset_normalizer intends. None otherwise."""
    stem = basename.split(".", 1)[0]
    if basename in {stem + suffix for suffix in ctx.runtime.extension_suffixes(ctx.arch)} or not stem.isidentifier():
        return None
    if stem.endswith("__mypyc"):
        # mypyc's shared runtime for the modules it compiled: only they import it, and they are unloadable too.
        return (f"; but {ctx.runtime.name} never loads a file of this name, and only the compiled modules beside it "
                "import it, which it does not load either: this file only takes room")
    folder = posixpath.dirname(_path_of(native))
    if not {posixpath.join(folder, f"{stem}.py"), posixpath.join(folder, stem, "__init__.py")} & tree.paths:
        return None
    return (f"; but {ctx.runtime.name} never loads a file of this name: it imports the pure-Python {stem} beside it "
            "instead, so this file only takes room")


def _install_hint(ctx: CheckContext) -> str:
    cpu = ARCHITECTURES[ctx.arch].machine
    return (
        f"`pip install --platform manylinux2014_{cpu} --only-binary=:all: "
        f"--python-version {ctx.runtime.minor} --target <dir> ...` or `lpkg build`"
    )


def _not_linux(facts: NativeFacts, basename: str, ctx: CheckContext) -> tuple[str, Severity]:
    what = "macOS (Mach-O)" if facts.kind == "macho" else "Windows (PE/DLL)"
    message = (
        f"is built for {what}; Lambda runs Linux and cannot load it. The dependencies were installed "
        f"for the wrong OS: install Linux wheels instead, e.g. {_install_hint(ctx)}"
    )
    # A .dylib is never what Linux Python imports; pure-Python wheels sometimes carry one for macOS
    # users next to a Linux fallback, so it is only worth a warning.
    return message, Severity.WARNING if basename.endswith(".dylib") else Severity.ERROR


def _wrong_arch(facts: NativeFacts, tag: re.Match[str] | None, ctx: CheckContext) -> str | None:
    arch = ARCHITECTURES[ctx.arch]
    expected = arch.elf_machine
    advice = f"install wheels for {ctx.arch}, e.g. {_install_hint(ctx)}"
    if facts.machine is not None and (facts.machine != expected or facts.elf_class not in (None, 64)):
        label = _MACHINE_LABEL.get(facts.machine, facts.machine)
        bits = f", {facts.elf_class}-bit" if facts.elf_class != 64 else ""
        return (
            f"is built for {label} ({facts.machine}{bits}) but the function runs on {ctx.arch} "
            f"({expected}): {advice}, or deploy the function for the architecture of its wheels"
        )
    platform = tag["platform"] if tag is not None else None
    if platform is None or "linux" not in platform:
        return None  # musl, Darwin and friends show up as libraries or formats, not as a CPU
    cpu = platform.split("-")[0]
    if cpu == arch.machine:
        return None
    return (
        f"has a file name for {ARCH_ALIASES.get(cpu, cpu)} ({platform}), so Python on {ctx.arch} will not "
        f"import it (it looks for {arch.extension_platform}): {advice}"
    )


def _wrong_python(ext_tag: str | None, tag: re.Match[str] | None, ctx: CheckContext) -> str | None:
    runtime = ctx.runtime
    wanted = runtime.abi_tag
    advice = (
        f"{runtime.name} imports only {wanted}, abi3 or untagged extensions: "
        f"install the dependencies for Python {runtime.minor}, e.g. {_install_hint(ctx)}"
    )
    if ext_tag is None:
        return None  # plain foo.so or abi3: importable by any CPython 3
    if ext_tag.startswith("pypy"):
        return f"is an extension module for PyPy ({ext_tag.split('-')[0]}), Lambda runs CPython; {advice}"
    if tag is None:
        return None  # a "cpython..." tag of no known shape: leave the verdict to the probe
    found = f"cpython-{tag['major']}{tag['minor']}{tag['flags']}"
    if found == wanted:
        return None
    return f"is an extension module for {found}; {advice}"


def _glibc_too_new(facts: NativeFacts, native: NativeFile, ctx: CheckContext) -> str | None:
    needed = facts.max_glibc
    runtime = ctx.runtime
    if needed is None or needed <= runtime.glibc:
        return None
    have = f"{runtime.glibc[0]}.{runtime.glibc[1]}"
    manylinux = f"manylinux_{runtime.glibc[0]}_{runtime.glibc[1]}"
    alternatives = [f"a wheel for {manylinux} or older ({_install_hint(ctx)})"]
    if native.distribution:
        alternatives.append(f"an older release of {native.distribution.split(' ')[0]}")
    newer = _runtime_with_glibc(needed, runtime)
    if newer is not None:
        alternatives.append(f"the {newer.name} runtime (glibc {newer.glibc[0]}.{newer.glibc[1]})")
    return (
        f"needs GLIBC_{needed[0]}.{needed[1]} but {runtime.name} ({runtime.os_name}) has glibc {have}: "
        f"use {', or '.join(alternatives)}"
    )


def _runtime_with_glibc(needed: tuple[int, int], current: Runtime) -> Runtime | None:
    candidates = [rt for rt in RUNTIMES.values() if rt.glibc >= needed and rt.version > current.version]
    return min(candidates, key=lambda rt: rt.version, default=None)


def _missing_libraries(path: str, facts: NativeFacts, runtime: Runtime, tree: _LoaderTree) -> Iterable[str]:
    for name in facts.needed:
        if "/" in name:
            continue  # a path, not a name to search for: rare, and relative to an unknown directory
        if name in runtime.system_libraries or _from_python(name, runtime):
            continue
        if tree.resolve(path, facts, name) is not None:
            continue
        yield _missing_message(name, runtime)


def _from_python(name: str, runtime: Runtime) -> bool:
    """libpython of the runtime's own interpreter lives in /var/lang/lib, which is on LD_LIBRARY_PATH."""
    minor = runtime.minor
    return name in (f"libpython{minor}.so.1.0", f"libpython{minor}.so", "libpython3.so")


def _missing_message(name: str, runtime: Runtime) -> str:
    where = f"the {runtime.name} runtime image ({runtime.os_name})"
    if name.startswith(("libc.musl-", "ld-musl-")):
        return (
            f"needs {name}: it was built for musl libc (a musllinux wheel), and {where} uses glibc: "
            f"install manylinux wheels instead"
        )
    if name.startswith("libpython"):
        return (
            f"needs {name}, which is not in {where} (its interpreter is Python {runtime.minor}): "
            f"install the dependencies for Python {runtime.minor}"
        )
    advice = _LIBRARY_ADVICE.get(name, "")
    return (
        f"needs {name}, which is not in {where} nor in the zip or its layers: {advice}"
        f"ship the library under lib/ in the zip or in a layer's lib/ (/opt/lib)"
    )

