"""The import-graph walk: modulegraph2 from the handler module, over Lambda's sys.path.

Runs with the target interpreter in a fresh child process (modulegraph2 resolves modules with
importlib.util.find_spec, which executes parent packages' __init__). Python >= 3.10.

What it reports, for first-party code only (modules not installed from a wheel, i.e. not in
any *.dist-info/RECORD): imports that resolve nowhere, `from X import Y` where X has no Y,
syntax errors, and reliance on the runtime's boto3. Installed distributions are complete by
construction, so the walk resolves the names first-party code takes from them but does not
descend into them; the real import is the final judge of what loads.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from lpkg.probe.sources import ImportStatement, SourceFacts, analyse_source
except ImportError:  # in the runtime container: sources.py sits beside this file, there is no lpkg package
    # Run with -I, so this file's folder is not on sys.path by itself.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sources import ImportStatement, SourceFacts, analyse_source  # type: ignore[no-redef,import-not-found]

# Modules the Lambda runtime provides (lpkg's runtime table, passed in by the entry).
RUNTIME_PROVIDED = frozenset(m for m in os.environ.get("LPKG_PROBE_RUNTIME_PROVIDED", "").split(",") if m)
# A local probe: the runtime's modules are absent here, which says nothing about Lambda.
STAND_INS = os.environ.get("LPKG_PROBE_STAND_INS") == "1"
# Layers Lambda attaches that the walk has not got: a module missing may be theirs.
UNSEEN_LAYERS = tuple(name for name in os.environ.get("LPKG_PROBE_UNSEEN_LAYERS", "").split(",") if name)


def record_files(roots: Iterable[str]) -> set[str]:
    """Absolute paths of every file an installed distribution put under these roots."""
    owned: set[str] = set()
    for root in roots:
        if not os.path.isdir(root):
            continue
        for entry in os.listdir(root):
            if not entry.endswith(".dist-info"):
                continue
            try:
                with open(os.path.join(root, entry, "RECORD"), encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        path = line.rsplit(",", 2)[0].strip('"')
                        if path:
                            owned.add(os.path.normpath(os.path.join(root, path)))
            except OSError:
                continue
    return owned


class Walk:
    def __init__(self, handler_module: str, task_root: str, opt: str, lambda_path: list[str]) -> None:
        import modulegraph2

        self.mg_nodes = modulegraph2
        self.handler_module = handler_module
        self.task_root = task_root.rstrip("/") + "/"
        self.opt = opt.rstrip("/") + "/"
        # Lambda's sys.path before the stdlib: the zip's and the layers' folders, then the runtime's own.
        self.packaged_roots = [p for p in lambda_path if (p.rstrip("/") + "/").startswith((self.task_root, self.opt))]
        self.runtime_folders = [p for p in lambda_path if p not in self.packaged_roots]
        self.owned = record_files(self.packaged_roots)
        self.findings: list[dict[str, Any]] = []
        self.facts_cache: dict[str, SourceFacts] = {}

        walk = self

        class FirstPartyGraph(modulegraph2.ModuleGraph):
            """Resolve everything, but read the imports of first-party modules only."""

            def _process_import_list(self, node: Any, imports: Iterable[Any]) -> None:
                if not walk.is_first_party(getattr(node, "filename", None)):
                    imports = ()
                super()._process_import_list(node, imports)

        self.graph = FirstPartyGraph(use_stdlib_implies=False, use_builtin_hooks=False)
        # Installed and runtime-provided packages are not resolved by modulegraph2 (find_spec would
        # run their __init__, e.g. all of pandas); whether what first-party code names exists in
        # them is looked up on disk instead, and the real import judges the rest.
        self.installed_tops = self.installed_top_levels()
        self.graph.add_excludes(sorted(self.installed_tops))

    def installed_top_levels(self) -> set[str]:
        names: set[str] = set()
        for path in self.owned:
            for root in self.packaged_roots:
                root = root.rstrip("/") + "/"
                if path.startswith(root):
                    head = path[len(root):].split("/", 1)[0]
                    names.add(head.split(".", 1)[0])
        for folder in self.runtime_folders:
            if os.path.isdir(folder):
                names.update(entry.split(".", 1)[0] for entry in os.listdir(folder))
        names = {n for n in names if n.isidentifier()}
        # A first-party module of the same name shadows the installed one: that one is walked.
        return {n for n in names if not self.is_first_party(self.find_on_disk(n))}

    def find_on_disk(self, name: str) -> str | None:
        """Where `name` would load from, found without importing anything (None: nowhere)."""
        from importlib.machinery import PathFinder

        search: list[str] | None = None
        origin: str | None = None
        parts = name.split(".")
        for i in range(len(parts)):
            spec = PathFinder.find_spec(".".join(parts[: i + 1]), search)
            if spec is None:
                return None
            search = list(spec.submodule_search_locations or [])
            origin = spec.origin if spec.origin not in (None, "namespace") else (search[0] if search else None)
            if i < len(parts) - 1 and not search:
                return None
        return origin

    def is_packaged(self, filename: object) -> bool:
        return filename is not None and str(filename).startswith((self.task_root, self.opt))

    def is_first_party(self, filename: object) -> bool:
        if not self.is_packaged(filename):
            return False
        path = os.path.normpath(str(filename))
        if os.path.isdir(path):  # a package: RECORD lists its __init__, not the folder
            path = os.path.join(path, "__init__.py")
        return path not in self.owned

    def member(self, filename: str) -> str:
        if filename.startswith(self.task_root):
            return filename[len(self.task_root):]
        return filename

    def facts(self, filename: str) -> SourceFacts:
        if filename not in self.facts_cache:
            try:
                with open(filename, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                self.facts_cache[filename] = SourceFacts(syntax_error=(1, str(exc)))
            else:
                self.facts_cache[filename] = analyse_source(data, filename)
        return self.facts_cache[filename]

    def add(self, code: str, severity: str, message: str, filename: str | None, line: int | None,
            chain: tuple[str, ...] = ()) -> None:
        member = self.member(filename) if filename else None
        for earlier in self.findings:
            # The same problem again in the same file (`from shared.a import x` then `from shared.b ...`):
            # one finding, with the other lines named.
            if (earlier["code"], earlier["message"], earlier["member"]) == (code, message, member):
                earlier["also_lines"].append(line)
                return
        self.findings.append(
            {
                "code": code,
                "severity": severity,
                "message": message,
                "member": member,
                "line": line,
                "chain": list(chain),
                "also_lines": [],
            }
        )

    def finished_findings(self) -> list[dict[str, Any]]:
        for finding in self.findings:
            also = finding.pop("also_lines")
            if also:
                finding["message"] += f" (also at line{'s' if len(also) > 1 else ''} {', '.join(map(str, also))})"
        return self.findings

    def node(self, name: str) -> Any:
        return self.graph.find_node(name)

    def first_party_modules(self) -> Iterator[tuple[str, str, bool]]:
        """(module name, source file, is package) of each first-party source module in the graph."""
        mg = self.mg_nodes
        for node in self.graph.iter_graph():
            filename = getattr(node, "filename", None)
            if not self.is_first_party(filename):
                continue
            if isinstance(node, mg.Package):
                init = node.init_module
                if isinstance(init, mg.SourceModule) or str(init.filename).endswith(".py"):
                    yield node.identifier, str(init.filename), True
            elif isinstance(node, (mg.SourceModule, mg.InvalidModule)) and str(filename).endswith(".py"):
                yield node.identifier, str(filename), False

    @staticmethod
    def absolute(module: str, is_package: bool, stmt: ImportStatement) -> str | None:
        if stmt.level == 0:
            return stmt.module
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        up = stmt.level - 1
        if len(base) - up <= 0:
            return None  # above the top-level package, or a relative import in a top-level module
        anchor = base[: len(base) - up]
        return ".".join(anchor + ([stmt.module] if stmt.module else []))

    def resolved(self, name: str) -> Any:
        """The node for `name`, or the first missing prefix of it (`a.b` for `a.b.c`)."""
        mg = self.mg_nodes
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            node = self.node(".".join(parts[:i]))
            if node is None or isinstance(node, (mg.MissingModule, mg.InvalidRelativeImport)):
                return node if node is not None else None
        return self.node(name)

    def is_missing(self, node: Any) -> bool:
        mg = self.mg_nodes
        return node is None or isinstance(node, (mg.MissingModule, mg.InvalidRelativeImport))

    def defines(self, target: Any, name: str) -> bool | None:
        """Whether module `target` provides `name`; None when that cannot be known statically."""
        mg = self.mg_nodes
        if isinstance(target, mg.AliasNode):
            return None
        sub = self.node(f"{target.identifier}.{name}")
        if sub is not None and not self.is_missing(sub):
            return True
        if isinstance(target, mg.NamespacePackage):
            return False
        if isinstance(target, mg.Package):
            code_node = target.init_module
        elif isinstance(target, mg.Module):
            code_node = target
        else:
            return None
        if not isinstance(code_node, (mg.SourceModule, mg.BytecodeModule)):
            return None  # extension or builtin module: its names are only known by importing it
        written: set[str] = getattr(code_node, "globals_written", set())
        if name in written:
            return True
        filename = str(code_node.filename or "")
        if not filename.endswith(".py"):
            return None  # compiled only: the bytecode's names above are all there is to go on
        facts = self.facts(filename)
        if facts.dynamic or facts.syntax_error:
            return None  # __getattr__, a star import, globals(): names the parser cannot know
        return name in facts.names

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.graph.add_module(self.handler_module)
        modules = list(self.first_party_modules())
        module_files = {name: (path, pkg) for name, path, pkg in modules}

        # Which first-party modules are loaded at import time: reached from the handler through
        # module-level, unguarded imports. Only there is a missing name certain to fail.
        required_chain: dict[str, tuple[str, ...]] = {self.handler_module: (self.handler_module,)}
        queue = collections.deque([self.handler_module])
        while queue:
            current = queue.popleft()
            if current not in module_files:
                continue
            path, pkg = module_files[current]
            for stmt in self.facts(path).imports:
                if stmt.optional or stmt.type_checking:
                    continue
                base = self.absolute(current, pkg, stmt)
                if base is None:
                    continue
                targets = [base] + [f"{base}.{n}" for n in stmt.names]
                for target in targets:
                    parts = target.split(".")
                    for i in range(1, len(parts) + 1):
                        prefix = ".".join(parts[:i])
                        if prefix in module_files and prefix not in required_chain:
                            required_chain[prefix] = required_chain[current] + (prefix,)
                            queue.append(prefix)

        boto_reported: set[str] = set()
        for module, path, pkg in modules:
            facts = self.facts(path)
            chain = required_chain.get(module, ())
            if facts.syntax_error is not None:
                line, msg = facts.syntax_error
                severity = "error" if chain else "warning"
                self.add("SYNTAX_ERROR", severity, f"syntax error: {msg}", path, line, chain)
                continue
            for stmt in facts.imports:
                if stmt.type_checking:
                    continue
                self.check_statement(module, path, pkg, stmt, chain, boto_reported)
        return {
            "status": "ok",
            "findings": self.finished_findings(),
            "first_party": sorted(self.member(p) for p, _ in module_files.values()),
            "nodes": sum(1 for _ in self.graph.iter_graph()),
            "walk_seconds": round(time.monotonic() - started, 3),
        }

    def check_statement(self, module: str, path: str, pkg: bool, stmt: ImportStatement,
                        chain: tuple[str, ...], boto_reported: set[str]) -> None:
        certain = bool(chain) and not stmt.optional
        severity = "error" if certain else "warning"
        how = "" if certain else f" ({stmt.how or 'its module is not imported when the handler loads'})"
        base = self.absolute(module, pkg, stmt)
        if base is None:
            self.add("IMPORT_BAD_RELATIVE", severity,
                     f"relative import {'.' * stmt.level}{stmt.module} goes above the top-level package",
                     path, stmt.line, chain)
            return
        node = self.resolved(base)
        if isinstance(node, self.mg_nodes.ExcludedModule):
            self.check_installed(base, path, stmt, chain, severity, how, boto_reported)
            return
        if self.is_missing(node):
            self.report_missing(node.identifier if node is not None else base, severity, how, path, stmt, chain)
            return
        self.warn_runtime_provided(base, str(getattr(self.node(base.split(".")[0]), "filename", "") or ""),
                                   path, stmt, chain, boto_reported)
        for name in stmt.names:
            if name == "*":
                continue
            defined = self.defines(node, name)
            if defined is False:
                self.add("IMPORT_NAME_MISSING", severity,
                         f"cannot import name '{name}' from '{base}'{how}: "
                         f"{self.name_hint(node, base, name)}",
                         path, stmt.line, chain)

    def check_installed(self, base: str, path: str, stmt: ImportStatement, chain: tuple[str, ...],
                        severity: str, how: str, boto_reported: set[str]) -> None:
        """An import of an installed or runtime-provided package, checked on disk."""
        origin = self.find_on_disk(base)
        if origin is None:
            parts = base.split(".")
            prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
            first_missing = next((p for p in prefixes if self.find_on_disk(p) is None), base)
            self.report_missing(first_missing, severity, how, path, stmt, chain)
            return
        self.warn_runtime_provided(base, origin, path, stmt, chain, boto_reported)

    def report_missing(self, missing: str, severity: str, how: str, path: str, stmt: ImportStatement,
                       chain: tuple[str, ...]) -> None:
        top = missing.split(".")[0]
        if STAND_INS and top in RUNTIME_PROVIDED:
            self.add("RUNTIME_PROVIDED_UNCHECKED", "info",
                     f"{top} is provided by the Lambda runtime and is not installed for the local interpreter: "
                     "what this file takes from it was not checked here (Docker checks it in the runtime image)",
                     path, stmt.line, chain)
            return
        if UNSEEN_LAYERS and not self.in_packaged_folders(top):
            self.add("IMPORT_FROM_UNSEEN_LAYER", "warning",
                     f"No module named '{missing}' in the zip or the layers attached here: layer "
                     f"{', '.join(UNSEEN_LAYERS)}, which Lambda attaches but lpkg has not got, may provide it — "
                     "not checked; pass that layer's zip with --layer to check it",
                     path, stmt.line, chain)
            return
        self.add("IMPORT_MISSING", severity, f"No module named '{missing}'{how}: {self.missing_hint(missing)}",
                 path, stmt.line, chain)

    def in_packaged_folders(self, top: str) -> bool:
        """Whether the zip or a layer here has `top` itself (then what is missing is below it, and no layer
        of Lambda's can add to a package the zip already has)."""
        return any(os.path.exists(os.path.join(root, top)) or os.path.exists(os.path.join(root, top + ".py"))
                   for root in self.packaged_roots)

    def warn_runtime_provided(self, base: str, loaded_from: str, path: str, stmt: ImportStatement,
                              chain: tuple[str, ...], reported: set[str]) -> None:
        """Once per module: relying on the runtime's copy (not the zip's) is worth a warning."""
        top = base.split(".")[0]
        if top in RUNTIME_PROVIDED and top not in reported and not self.is_packaged(loaded_from):
            reported.add(top)
            # The distribution's name: boto3's are the modules', the durable SDK's has dashes.
            self.add("IMPORT_RUNTIME_BOTO3", "warning",
                     f"'{top}' comes from the Lambda runtime, whose version changes by region and date;"
                     f" pin {top.replace('_', '-')} in your requirements to ship a known version",
                     path, stmt.line, chain)

    def missing_hint(self, missing: str) -> str:
        top = missing.split(".")[0]
        local = [p for p in (os.path.join(self.task_root, top), os.path.join(self.task_root, top + ".py"))
                 if os.path.exists(p)]
        if local:
            return f"'{top}' is in the zip but has no '{missing[len(top) + 1:]}'"
        return (f"'{top}' is neither in the zip, in a layer, nor in the runtime — if it is your own code "
                f"(a {top}/ folder beside the function), put it in the zip at {top}/; if it is a dependency, "
                f"add it to requirements.txt")

    def name_hint(self, node: Any, base: str, name: str) -> str:
        filename = str(getattr(node, "filename", "") or "")
        mg = self.mg_nodes
        if isinstance(node, mg.Package):
            filename = str(node.init_module.filename or "")
        where = self.member(filename) if filename else base
        hint = f"{where} defines no '{name}'"
        if filename.endswith(".py"):
            owners = self.facts(filename).classes_with_method(name)
            if owners:
                cls = owners[0]
                hint += (f"; it is a method of class {cls}: import {cls} "
                         f"(`from {base} import {cls}`) and call {cls}.{name}()")
        return hint


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--sys-path", required=True)
    parser.add_argument("--task-root", required=True)
    parser.add_argument("--opt", required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--lambda-path", required=True)
    parser.add_argument("--probe-lib", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--go-fd", type=int, help="walk once this pipe closes (the files are being unpacked)")
    args = parser.parse_args()
    # modulegraph2 comes from the probe's own folder, before the packaged folders are on sys.path (and maybe
    # before they are unpacked); then sys.path becomes exactly Lambda's.
    sys.path[:0] = [args.probe_lib]
    result: dict[str, Any]
    try:
        import modulegraph2  # noqa: F401

        if args.go_fd is not None:
            os.read(args.go_fd, 1)  # returns when the entry closes its end: the task root is unpacked
            os.close(args.go_fd)
        sys.path[:] = json.loads(args.sys_path)
        module = args.handler.rsplit(".", 1)[0].replace("/", ".")
        result = Walk(module, args.task_root, args.opt, json.loads(args.lambda_path)).run()
    except BaseException as exc:  # noqa: BLE001 - packaged __init__ code runs during the walk
        import traceback

        result = {"status": "failed", "message": f"{type(exc).__name__}: {exc}",
                  "trace": traceback.format_exc()[-3000:]}
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
