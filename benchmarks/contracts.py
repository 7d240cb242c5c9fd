"""The contract check (lpkg.checks.contracts): which type checker, how well, how fast.

    python benchmarks/contracts.py [--codebase NAME=DIR]... [--runs 7]

1. Seed cases: the rds-dashboard functions and every case under fixtures/contracts. For each candidate
   checker run raw (mypy, basedpyright, ty; each over the copy lpkg lays out, with Lambda's context in place
   of the annotations, keeping only the diagnostic kinds that can mean "raises when it runs") and for lpkg's
   check (ty + the parser's confirmation): the marked lines found and missed, and lines reported that are
   not marked (false alarms: every bail-out case and the correct functions must give none).
2. Real code bases (checkouts given with --codebase): every first-party module under a function's code root
   (a folder holding a handler, or the top of its package), tests and infrastructure left out. An entry
   module imports every module of the root and calls each handler with (event, context), so every module
   is reached and the context flows into every handler. Printed: modules, each candidate's kept
   diagnostics, lpkg's findings (each one is a false alarm unless it is a real bug; they are listed).
3. Time: lpkg's check on rds-dashboard's drift-alerts, cold (no cache) and cached, medians of --runs.
The dependencies given to the checkers as search path (aws-lambda-powertools, aws-lambda-typing, pydantic,
boto3, requests) are installed once with pip into the work folder.
"""

from __future__ import annotations

import argparse
import ast
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract_checkers import CANDIDATES, Raw, tools_venv

from lpkg.checks.contracts import ContractInputs, check_contracts
from lpkg.config import Overrides, resolve_settings
from lpkg.plan.discover import discover
from lpkg.plan.projects import detect_project, read_project
from lpkg.plan.projects.overrides import overrides_for

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "fixtures" / "contracts"
DASHBOARD = REPO / "fixtures" / "projects" / "rds-dashboard" / "lambda"
WORK = Path(tempfile.gettempdir()) / "lpkg-bench-contracts"
SITE_PACKAGES = ["aws-lambda-powertools==3.37.0", "aws-lambda-typing==2.20.0", "pydantic==2.12.5", "boto3==1.40.0",
                 "requests==2.32.5"]
EXPECT = re.compile(r"#\s*expect:\s*([A-Z_]+)")
LEFT_OUT = re.compile(r"(^|/)(tests?|cdk\.out|node_modules|\.venv|venv|infra|infrastructure|deployment|docs|"
                      r"integration[-_]tests?|e2e|benchmark|\.github|build|dist)(/|$)")
HANDLER_NAMES = re.compile(r"^(handler|lambda_handler|main|.*_handler)$")  # taking (event, context):
CONTEXT_NAMES = re.compile(r"^_*(context|ctx|lambda_context|lambda_ctx)?$")
ENTRY = "_lpkg_entry"
LAMBDA_LAYOUT = "lambda"


def site_folder() -> Path:
    site = WORK / "site"
    if not (site / "boto3").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), *SITE_PACKAGES],
                       check=True)
    return site


def seed_cases() -> dict[str, tuple[dict[str, Path], set[tuple[str, int]]]]:
    cases: dict[str, tuple[dict[str, Path], set[tuple[str, int]]]] = {}
    for function in sorted(p.name for p in DASHBOARD.iterdir() if p.name != "shared"):
        files = {f"shared/{p.name}": p for p in (DASHBOARD / "shared").glob("*.py")}
        files["handler.py"] = DASHBOARD / function / "handler.py"
        marked = {"inventory-report": 14, "drift-alerts": 14, "audit-log": 13}
        marks = {("handler.py", marked[function])} if function in marked else set()
        cases[f"rds-dashboard/{function}"] = (files, marks)
    for folder in sorted([*CASES.glob("found/*"), *CASES.glob("bailout/*"), CASES / "ignored"]):
        files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.py")}
        marks = {(member, n) for member, path in files.items()
                 for n, text in enumerate(path.read_text().splitlines(), 1) if EXPECT.search(text)}
        cases[folder.relative_to(CASES).as_posix()] = (files, marks)
    return cases


def lpkg_raw(inputs: ContractInputs, _: Path) -> Raw:
    start = time.perf_counter()
    findings = check_contracts(inputs, None)
    return Raw(frozenset((f.member or "", f.line or 0) for f in findings if f.severity.name == "ERROR"),
               time.perf_counter() - start)


def seed_table(site: Path, venv: Path) -> None:
    runners = {**CANDIDATES, "lpkg: ty + confirmation": lpkg_raw}
    totals = {name: [0, 0, 0, 0.0] for name in runners}  # found, missed, false alarms, seconds
    print("\n## Seed cases (found / missed / false alarms per case)\n")
    print("| case | marked | " + " | ".join(runners) + " |")
    print("|---|---|" + "---|" * len(runners))
    for case, (files, marks) in seed_cases().items():
        inputs = ContractInputs(files, (site,), "handler", "handler", "3.11")
        cells = []
        for name, runner in runners.items():
            raw = runner(inputs, venv)
            found, false = len(marks & raw.hits), len(raw.hits - marks)
            total = totals[name]
            total[0] += found
            total[1] += len(marks) - found
            total[2] += false
            total[3] += raw.seconds
            cells.append(f"{found}/{len(marks) - found}/{false}" + (" (failed)" if raw.failed else ""))
        print(f"| {case} | {len(marks)} | " + " | ".join(cells) + " |")
    print("| **total** | | " + " | ".join(f"**{t[0]}/{t[1]}/{t[2]}** ({t[3]:.1f} s)" for t in totals.values()) + " |")


def code_roots(repo: Path) -> dict[Path, list[tuple[str, str]]]:
    """Each function's code root -> the handlers under it (module, function)."""
    roots: dict[Path, list[tuple[str, str]]] = {}
    for path in sorted(repo.rglob("*.py")):
        relative = path.relative_to(repo).as_posix()
        if LEFT_OUT.search(relative) or path.name.startswith("test_") or path.name in ("setup.py", "noxfile.py"):
            continue
        handlers = _handlers(path)
        if not handlers and not (path.parent / "__init__.py").exists():
            continue
        root = path.parent
        while (root / "__init__.py").exists() and root != repo:
            root = root.parent
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        roots.setdefault(root, []).extend((module, h) for h in handlers)
    return {root: handlers for root, handlers in roots.items() if handlers or _is_package_root(root)}


def _is_package_root(root: Path) -> bool:
    return any((child / "__init__.py").exists() for child in root.iterdir() if child.is_dir())


def _handlers(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and HANDLER_NAMES.match(node.name) and len(node.args.args) - len(node.args.defaults) == 2
            and CONTEXT_NAMES.match(node.args.args[1].arg)]


def root_inputs(root: Path, handlers: list[tuple[str, str]], scratch: Path, site: Path) -> tuple[ContractInputs, int]:
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.py"))
             if not LEFT_OUT.search(p.relative_to(root).as_posix()) and not p.name.startswith("test_")}
    modules = sorted({".".join(Path(m).with_suffix("").parts).removesuffix(".__init__") for m in files})
    importable = [m for m in modules if all(part.isidentifier() for part in m.split("."))]
    lines = [f"import {module} as _m{i}" for i, module in enumerate(importable)]
    aliases = {module: f"_m{i}" for i, module in enumerate(importable)}
    calls = [f"    {aliases[m]}.{f}(event, context)" for m, f in handlers if m in aliases]
    entry = scratch / f"{abs(hash(root))}.py"
    entry.write_text("\n".join([*lines, "", "", "def handler(event, context):", *(calls or ["    pass"])]) + "\n")
    files[f"{ENTRY}.py"] = entry
    return ContractInputs(files, (site,), ENTRY, "handler", "3.11"), len(files) - 1


def codebase_table(codebases: dict[str, Path], site: Path, venv: Path) -> None:
    runners = {**CANDIDATES, "lpkg: ty + confirmation": lpkg_raw}
    print("\n## Real code bases (kept diagnostics; lpkg's findings are errors it would report)\n")
    print("| code base | code roots | modules | " + " | ".join(runners) + " |")
    print("|---|---|---|" + "---|" * len(runners))
    listed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-entries-") as scratch:
        for name, repo in codebases.items():
            counts = dict.fromkeys(runners, 0)
            seconds = dict.fromkeys(runners, 0.0)
            roots = code_roots(repo)
            module_total = 0
            for root, handlers in roots.items():
                inputs, modules = root_inputs(root, handlers, Path(scratch), site)
                module_total += modules
                for runner_name, runner in runners.items():
                    raw = runner(inputs, venv)
                    counts[runner_name] += len(raw.hits)
                    seconds[runner_name] += raw.seconds
                    if runner_name.startswith("lpkg"):
                        findings = check_contracts(inputs, None)
                        listed += [f"{name}: {root.relative_to(repo)}/{f.location()}: {f.code} {f.message}"
                                   for f in findings]
            print(f"| {name} | {len(roots)} | {module_total} | "
                  + " | ".join(f"{counts[r]} ({seconds[r]:.1f} s)" for r in runners) + " |")
    print("\nlpkg's findings on the real code bases:" + ("".join(f"\n- {line}" for line in listed) or " none"))


def fixture_functions() -> list[tuple[str, Path, Overrides]]:
    """Every function of fixtures/projects: those a project file declares (SAM, serverless, Terraform), and the
    folders holding a handler.py elsewhere."""
    found: list[tuple[str, Path, Overrides]] = []
    projects = REPO / "fixtures" / "projects"
    for project_dir in sorted(p for p in projects.iterdir() if p.is_dir()):
        detected = detect_project(project_dir)
        if detected is not None:
            project = read_project(*detected)
            found += [(f"{project_dir.name}: {f.name}", f.code_dir, overrides_for(project, f, Overrides()))
                      for f in project.functions]
        else:
            found += [(str(p.parent.relative_to(projects)), p.parent, Overrides())
                      for p in sorted(project_dir.glob("**/handler.py"))]
    return found


def fixture_projects_table(site: Path) -> None:
    """Every function of fixtures/projects, with the files lpkg's discovery puts in its zip."""
    print("\n## fixtures/projects: every function, as `lpkg build` discovers it (lpkg's check)\n")
    print("| function | first-party modules | findings |\n|---|---|---|")
    total_modules = 0
    for label, folder, overrides in fixture_functions():
        plan, _ = discover(resolve_settings(folder, overrides, cwd=REPO))
        files = {member: path for member, path in plan.files if member.endswith(".py")}
        total_modules += len(files)
        inputs = ContractInputs(files, (site,), plan.handler.module, plan.handler.function, plan.settings.runtime.minor)
        findings = check_contracts(inputs, None)
        print(f"| {label} | {len(files)} | " + ("; ".join(f"{f.code} {f.location()}" for f in findings) or "0") + " |")
    print(f"| **total** | **{total_modules}** | |")


def timing(runs: int) -> None:
    files = {f"shared/{p.name}": p for p in (DASHBOARD / "shared").glob("*.py")}
    files["handler.py"] = DASHBOARD / "drift-alerts" / "handler.py"
    inputs = ContractInputs(files, (), "handler", "handler", "3.11")
    cold = []
    warm = []
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as scratch:
        for round_ in range(runs):
            cache = Path(scratch) / str(round_)
            start = time.perf_counter()
            check_contracts(inputs, cache)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            check_contracts(inputs, cache)
            warm.append(time.perf_counter() - start)
    print("\n## Time: lpkg's check on rds-dashboard/drift-alerts (in-process, ty subprocess included)\n")
    print("| case | median | runs |\n|---|---|---|")
    for label, times in (("cold (no cache)", cold), ("cached (nothing changed)", warm)):
        print(f"| {label} | {statistics.median(times) * 1000:.0f} ms | "
              + " ".join(f"{t * 1000:.0f}" for t in times) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codebase", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-seeds", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    site, venv = site_folder(), tools_venv(WORK)
    if not args.no_seeds:
        seed_table(site, venv)
        fixture_projects_table(site)
    codebases = dict(item.split("=", 1) for item in args.codebase)
    if codebases:
        codebase_table({name: Path(folder) for name, folder in codebases.items()}, site, venv)
    timing(args.runs)


if __name__ == "__main__":
    main()
