"""How long `lpkg build` takes for two functions, beside a bare `pip install --target` of the same
requirements in the same image and beside `sam build`, in one run:

  pinned   fixtures/projects/pinned-api/orders: requests, pydantic, boto3 pinned, with its lock (2,248 files;
           sam's own copy of boto3 costs it seconds, which hides lpkg's fixed costs)
  small    fixtures/projects/small-api/greet: two pure-Python dependencies (urllib3, python-dateutil), no boto3:
           here lpkg's fixed costs (start-up, container start, the import test, unpacking) are the figure

    python benchmarks/build.py [--image IMAGE] [--runs 3] [--no-sam] [--function pinned|small]...

Measured, each as a separate process:
  lpkg cold          empty lpkg cache (pip's download cache, the Docker volume, is warm for both sides)
  bare pip           pip install --target of the same lock, in the same image, same flags, nothing else
  lpkg no change     a rebuild with nothing changed
  lpkg code change   a rebuild after editing the handler (re-zip, full verification with the import test)
  sam build          aws-sam-cli from PyPI, in its own venv (made here once): plain; --cached with nothing
                     changed; --cached after the same handler edit lpkg gets
  import             `import handler` in the runtime image, zip built with and without --compile
lpkg runs from a regular install (pip install of this checkout into its own venv, as the README's first
command does), not the editable one a development venv has: that is what users start.
Medians are printed with the runs and the ratios the issue aims at. Each warm case alternates lpkg and
sam, so the machine's noise hits both sides alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME = "python3.11"
WORK = Path(tempfile.gettempdir()) / "lpkg-bench-build"
TEMPLATE = """AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {function}/
      Handler: handler.handler
      Runtime: {runtime}
"""


@dataclass(frozen=True)
class Subject:
    """A function to build: its project, folder and requirement file (a lock installs with --require-hashes)."""

    key: str
    project: Path
    function: str
    requirements: str
    what: str

    @property
    def hashed(self) -> bool:
        return self.requirements.endswith(".lock")


SUBJECTS = {
    "pinned": Subject("pinned", REPO / "fixtures" / "projects" / "pinned-api", "orders", "requirements.lock",
                      "requests, pydantic, boto3 pinned, locked"),
    "small": Subject("small", REPO / "fixtures" / "projects" / "small-api", "greet", "requirements.txt",
                     "urllib3, python-dateutil: pure Python, no boto3"),
}
# (case, ratio of which two medians, aim): what the issues aim at.
AIMS = {
    "pinned": (("lpkg cold / bare pip", "cold", "bare", 1.2), ("lpkg no change / sam --cached", "no_change",
               "sam_no_change", 0.1), ("lpkg code change / sam --cached", "code_change", "sam_code_change", 0.5)),
    "small": (("lpkg no change / sam --cached", "no_change", "sam_no_change", 0.08),
              ("lpkg code change / sam --cached", "code_change", "sam_code_change", 0.5)),
}
IMPORT_TIMER = (
    "import sys, time; sys.path[:0] = ['/var/task']; t = time.perf_counter(); import handler; "
    "print(time.perf_counter() - t)"
)


def python_start(runs: int) -> list[float]:
    """The interpreter's own start-up, for scale: no lpkg can start faster."""
    return [timed([sys.executable, "-c", "pass"], {}) for _ in range(runs)]


def lpkg_command() -> list[str]:
    """lpkg installed from this checkout into a venv of its own (dependencies installed once, lpkg itself
    reinstalled each run so the figures are for the code as it is now)."""
    venv = WORK / "lpkg-venv"
    pip = venv / "bin" / "pip"
    if not pip.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(pip), "install", "--quiet", str(REPO)], check=True)
    subprocess.run([str(pip), "install", "--quiet", "--no-deps", "--force-reinstall", str(REPO)], check=True)
    return [str(venv / "bin" / "lpkg")]


def timed(command: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(list(command), env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return elapsed


def median(times: Sequence[float]) -> float:
    return statistics.median(times)


def line(label: str, times: Sequence[float]) -> str:
    runs = " ".join(f"{t:.2f}" for t in times)
    return f"{label:<34} median {median(times):7.2f} s   runs: {runs}"


def sam_venv() -> Path:
    """aws-sam-cli in its own venv under the temp folder, made once; it needs python3.11 for the runtime."""
    venv = WORK / "sam-venv"
    sam = venv / "bin" / "sam"
    if not sam.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "aws-sam-cli"], check=True)
    return sam


def bare_pip(image: str, lock: Path, network: str, hashed: bool) -> list[str]:
    """The install lpkg runs, alone: the same image, requirements, flags and pip download cache."""
    command = ["docker", "run", "--rm", "--network", network, "-v", "lpkg-pip-cache:/lpkg-cache",
               "-v", f"{lock.parent}:/lpkg-in:ro", "--entrypoint", f"/var/lang/bin/{RUNTIME}"]
    ca = os.environ.get("PIP_CERT")
    if ca and Path(ca).is_file():
        command += ["-v", f"{ca}:/ca.pem:ro", "-e", "PIP_CERT=/ca.pem"]
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        if os.environ.get(key):
            command += ["-e", f"{key}={os.environ[key]}"]
    return [*command, image, "-m", "pip", "install", "--target", "/tmp/site", "--cache-dir", "/lpkg-cache",
            "--no-compile", "--progress-bar", "off", "--disable-pip-version-check",
            *(["--require-hashes", "--no-deps"] if hashed else []), "-r", f"/lpkg-in/{lock.name}"]


def import_times(image: str, zip_path: Path, runs: int) -> list[float]:
    """`import handler` in fresh runtime containers, the task root read-only as in Lambda."""
    task = Path(tempfile.mkdtemp(prefix="lpkg-bench-task-"))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(task)
        task.chmod(0o755)
        command = ["docker", "run", "--rm", "--network", "none", "-v", f"{task}:/var/task:ro",
                   "--entrypoint", f"/var/lang/bin/{RUNTIME}", image, "-c", IMPORT_TIMER]
        times = []
        for _ in range(runs):
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            times.append(float(out.strip().splitlines()[-1]))
        return times
    finally:
        shutil.rmtree(task, ignore_errors=True)


@dataclass
class Figures:
    """Every run of every case of one function, in seconds."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, case: str, seconds: float) -> None:
        self.times.setdefault(case, []).append(seconds)

    def median(self, case: str) -> float | None:
        runs = self.times.get(case)
        return median(runs) if runs else None


@dataclass
class Bench:
    """One function's project copy, its lpkg command and sam's."""

    subject: Subject
    image: str
    lpkg: list[str]
    network: str
    project: Path = field(init=False)
    figures: Figures = field(default_factory=Figures)

    def __post_init__(self) -> None:
        self.project = Path(tempfile.mkdtemp(prefix=f"project-{self.subject.key}-", dir=WORK))
        shutil.copytree(self.subject.project, self.project, dirs_exist_ok=True)
        self.lpkg = [*self.lpkg, "build", str(self.function), "--runtime", RUNTIME, "--build-image", self.image,
                     "--image", self.image, "--out", str(self.out)]
        self.warm_env = self.fresh_cache()

    @property
    def function(self) -> Path:
        return self.project / self.subject.function

    @property
    def out(self) -> Path:
        return self.project / "dist"

    def fresh_cache(self) -> dict[str, str]:
        return {"LPKG_DOCKER_NETWORK": self.network,
                "LPKG_CACHE_DIR": tempfile.mkdtemp(prefix="lpkg-cache-", dir=WORK)}

    def bare(self) -> list[str]:
        return bare_pip(self.image, self.function / self.subject.requirements, self.network, self.subject.hashed)

    def edit(self, run: int) -> None:
        handler = self.function / "handler.py"
        handler.write_text(handler.read_text() + f"\n# edit {run}\n")


def cold_cases(bench: Bench, runs: int) -> None:
    timed(bench.bare(), {})  # warms pip's download cache (the Docker volume both sides use) and the image's pages
    for _ in range(runs):
        bench.figures.add("bare", timed(bench.bare(), {}))
        shutil.rmtree(bench.out, ignore_errors=True)
        bench.figures.add("cold", timed(bench.lpkg, bench.fresh_cache()))


def sam_cases(bench: Bench, sam: Path, runs: int) -> list[str]:
    (bench.project / "template.yaml").write_text(TEMPLATE.format(function=bench.subject.function, runtime=RUNTIME))
    for _ in range(runs):
        shutil.rmtree(bench.project / ".aws-sam", ignore_errors=True)
        bench.figures.add("sam", timed([str(sam), "build"], sam_env(sam), cwd=bench.project))
    cached = [str(sam), "build", "--cached"]
    timed(cached, sam_env(sam), cwd=bench.project)  # fills sam's cache
    return cached


def sam_env(sam: Path) -> dict[str, str]:
    return {"SAM_CLI_TELEMETRY": "0", "PATH": f"{sam.parent}:{os.environ['PATH']}"}


def warm_round(benches: Sequence[Bench], sams: Mapping[str, list[str]], sam: Path | None, run: int,
               runs: int) -> None:
    """One round of the warm cases of every function, lpkg and sam alternating, so noise hits both alike."""
    for bench in benches:
        cached = sams.get(bench.subject.key)
        # Both tools are up to date here: nothing changed since each one's last build.
        if cached is not None and sam is not None:
            bench.figures.add("sam_no_change", timed(cached, sam_env(sam), cwd=bench.project))
        bench.figures.add("no_change", timed(bench.lpkg, bench.warm_env))
        bench.figures.add("python", python_start(1)[0])
        if run < runs:
            # The same edit for both, then each rebuilds: lpkg re-zips and re-verifies, sam re-copies.
            bench.edit(run)
            bench.figures.add("code_change", timed(bench.lpkg, bench.warm_env))
            if cached is not None and sam is not None:
                bench.figures.add("sam_code_change", timed(cached, sam_env(sam), cwd=bench.project))


LABELS = (
    ("bare", "bare pip install --target"), ("cold", "lpkg build, cold (empty cache)"),
    ("no_change", "lpkg build, no change"), ("python", "(python -c pass, for scale)"),
    ("code_change", "lpkg build, code-only change"), ("sam", "sam build"),
    ("sam_no_change", "sam build --cached, no change"), ("sam_code_change", "sam build --cached, code change"),
)


def report(bench: Bench) -> None:
    figures = bench.figures
    print(f"\nfunction: {bench.subject.key} ({bench.subject.function}: {bench.subject.what}; {RUNTIME}), "
          f"image {bench.image}")
    for case, label in LABELS:
        if case in figures.times:
            print(line(label, figures.times[case]))
    for case in ("plain_import", "compiled_import"):
        if case in figures.times:
            label = f"import handler, zip {'with' if case == 'compiled_import' else 'without'} --compile"
            print(f"{label:<34} median {median(figures.times[case]) * 1000:7.0f} ms")
    print("ratios:                                 ratio    aim  met?")
    aims = list(AIMS[bench.subject.key])
    if "compiled_import" in figures.times:
        aims.append(("import with / without --compile", "compiled_import", "plain_import", 0.6))
    for label, case, against, aim in aims:
        ours, theirs = figures.median(case), figures.median(against)
        if ours is None or theirs is None:
            continue
        ratio = ours / theirs
        print(f"  {label:<36} {ratio:6.3f}x {aim:5.2f}x  {'yes' if ratio <= aim else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64",
                        help="build image and runtime image (the stand-in plays both)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-sam", action="store_true", help="skip sam build")
    parser.add_argument("--function", action="append", choices=sorted(SUBJECTS),
                        help="which function (default: both)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build and bare pip")
    args = parser.parse_args()
    network = os.environ.get("LPKG_DOCKER_NETWORK", "host")

    WORK.mkdir(exist_ok=True)
    lpkg = lpkg_command()
    benches = [Bench(SUBJECTS[key], args.image, lpkg, network) for key in (args.function or ["pinned", "small"])]
    load_before = os.getloadavg()
    if not args.no_cold:
        for bench in benches:
            cold_cases(bench, args.runs)
    sam = None if args.no_sam else sam_venv()
    sams = {bench.subject.key: sam_cases(bench, sam, args.runs) for bench in benches} if sam is not None else {}
    for bench in benches:
        timed(bench.lpkg, bench.warm_env)
    for run in range(max(args.runs, 5)):
        warm_round(benches, sams, sam, run, args.runs)
    for bench in benches:
        if bench.subject.key == "pinned":
            compiled_out = bench.project / "dist-compiled"
            timed([*bench.lpkg, "--out", str(compiled_out), "--compile"], bench.warm_env)
            zip_name = f"{bench.subject.function}.zip"
            bench.figures.times["plain_import"] = import_times(args.image, bench.out / zip_name, max(args.runs, 5))
            bench.figures.times["compiled_import"] = import_times(args.image, compiled_out / zip_name,
                                                                  max(args.runs, 5))
    load_after = os.getloadavg()
    for bench in benches:
        report(bench)
    print(f"\nload average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after ({os.cpu_count()} CPUs)")
    for bench in benches:
        shutil.rmtree(bench.project, ignore_errors=True)
    for cache in WORK.glob("lpkg-cache-*"):
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
