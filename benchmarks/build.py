"""How long `lpkg build` takes for one function (requests, pydantic, boto3 pinned), beside a bare
`pip install --target` of the same lock in the same image and beside `sam build`, in one run.

    python benchmarks/build.py [--image IMAGE] [--runs 3] [--no-sam]

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO / "fixtures" / "projects" / "pinned-api"
FUNCTION = "orders"
RUNTIME = "python3.11"
WORK = Path(tempfile.gettempdir()) / "lpkg-bench-build"
TEMPLATE = f"""AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {FUNCTION}/
      Handler: handler.handler
      Runtime: {RUNTIME}
"""
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


def bare_pip(image: str, lock: Path, network: str) -> list[str]:
    """The install lpkg runs, alone: the same image, lock, flags and pip download cache."""
    command = ["docker", "run", "--rm", "--network", network, "-v", "lpkg-pip-cache:/lpkg-cache",
               "-v", f"{lock.parent}:/lpkg-in:ro", "--entrypoint", f"/var/lang/bin/{RUNTIME}"]
    ca = os.environ.get("PIP_CERT")
    if ca and Path(ca).is_file():
        command += ["-v", f"{ca}:/ca.pem:ro", "-e", "PIP_CERT=/ca.pem"]
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        if os.environ.get(key):
            command += ["-e", f"{key}={os.environ[key]}"]
    return [*command, image, "-m", "pip", "install", "--target", "/tmp/site", "--cache-dir", "/lpkg-cache",
            "--no-compile", "--progress-bar", "off", "--disable-pip-version-check", "--require-hashes", "--no-deps",
            "-r", f"/lpkg-in/{lock.name}"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="lpkg-standin/lambda-python:3.11-x86_64",
                        help="build image and runtime image (the stand-in plays both)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-sam", action="store_true", help="skip sam build")
    args = parser.parse_args()
    network = os.environ.get("LPKG_DOCKER_NETWORK", "host")

    WORK.mkdir(exist_ok=True)
    project = Path(tempfile.mkdtemp(prefix="project-", dir=WORK))
    shutil.copytree(PROJECT, project, dirs_exist_ok=True)
    function = project / FUNCTION
    handler = function / "handler.py"
    lock = function / "requirements.lock"
    out = project / "dist"
    lpkg = [*lpkg_command(), "build", str(function), "--runtime", RUNTIME, "--build-image", args.image,
            "--image", args.image, "--out", str(out)]
    env = {"LPKG_DOCKER_NETWORK": network}

    def fresh_cache() -> dict[str, str]:
        return {**env, "LPKG_CACHE_DIR": tempfile.mkdtemp(prefix="lpkg-cache-", dir=WORK)}

    # Warm pip's download cache (the Docker volume both sides use) and the images' pages once.
    timed(bare_pip(args.image, lock, network), {})
    cold: list[float] = []
    bare: list[float] = []
    for _ in range(args.runs):
        bare.append(timed(bare_pip(args.image, lock, network), {}))
        shutil.rmtree(out, ignore_errors=True)
        cold.append(timed(lpkg, fresh_cache()))
    sam_plain: list[float] = []
    sam_no_change: list[float] = []
    sam_code_change: list[float] = []
    sam_build = None
    if not args.no_sam:
        sam = sam_venv()
        (project / "template.yaml").write_text(TEMPLATE)
        sam_env = {"SAM_CLI_TELEMETRY": "0", "PATH": f"{sam.parent}:{os.environ['PATH']}"}
        for _ in range(args.runs):
            shutil.rmtree(project / ".aws-sam", ignore_errors=True)
            sam_plain.append(timed([str(sam), "build"], sam_env, cwd=project))
        sam_build = [str(sam), "build", "--cached"]
        timed(sam_build, sam_env, cwd=project)  # fills sam's cache

    warm_env = fresh_cache()
    timed(lpkg, warm_env)
    no_change: list[float] = []
    code_change: list[float] = []
    interpreter: list[float] = []
    for run in range(max(args.runs, 5)):
        # Both tools are up to date here: nothing changed since each one's last build.
        if sam_build is not None:
            sam_no_change.append(timed(sam_build, sam_env, cwd=project))
        no_change.append(timed(lpkg, warm_env))
        interpreter += python_start(1)
        if run < args.runs:
            # The same edit for both, then each rebuilds: lpkg re-zips and re-verifies, sam re-copies.
            handler.write_text(handler.read_text() + f"\n# edit {run}\n")
            code_change.append(timed(lpkg, warm_env))
            if sam_build is not None:
                sam_code_change.append(timed(sam_build, sam_env, cwd=project))

    compiled_out = project / "dist-compiled"
    timed([*lpkg, "--out", str(compiled_out), "--compile"], warm_env)
    plain_import = import_times(args.image, out / f"{FUNCTION}.zip", max(args.runs, 5))
    compiled_import = import_times(args.image, compiled_out / f"{FUNCTION}.zip", max(args.runs, 5))

    print(f"function: {FUNCTION} (requests, pydantic, boto3 pinned; {RUNTIME}), image {args.image}")
    print(line("bare pip install --target (lock)", bare))
    print(line("lpkg build, cold (empty cache)", cold))
    print(line("lpkg build, no change", no_change))
    print(line("(python -c pass, for scale)", interpreter))
    print(line("lpkg build, code-only change", code_change))
    if sam_plain:
        print(line("sam build", sam_plain))
        print(line("sam build --cached, no change", sam_no_change))
        print(line("sam build --cached, code change", sam_code_change))
    print(f"{'import handler, zip without --compile':<34} median {median(plain_import) * 1000:7.0f} ms")
    print(f"{'import handler, zip with --compile':<34} median {median(compiled_import) * 1000:7.0f} ms")
    print("ratios (aim):")
    print(f"  lpkg cold / bare pip               {median(cold) / median(bare):5.2f}x  (<= 1.2x; "
          f"lpkg's own time {median(cold) - median(bare):+.2f} s)")
    if sam_no_change:
        print(f"  lpkg no change / sam --cached      {median(no_change) / median(sam_no_change):5.2f}x  (<= 0.1x; "
              "both with nothing changed)")
        print(f"  lpkg code change / sam --cached    {median(code_change) / median(sam_code_change):5.2f}x  (<= 0.5x; "
              "both after the same edit)")
        print(f"  lpkg code change / sam --cached, no change  {median(code_change) / median(sam_no_change):5.2f}x")
        print(f"  lpkg cold / sam build              {median(cold) / median(sam_plain):5.2f}x")
    print(f"  import with / without --compile    {median(compiled_import) / median(plain_import):5.2f}x  (<= 0.6x)")
    shutil.rmtree(project, ignore_errors=True)
    for cache in WORK.glob("lpkg-cache-*"):
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
