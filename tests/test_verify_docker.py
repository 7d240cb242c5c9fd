"""lpkg verify end to end: real zips, the real CLI, the stand-in runtime image in a real container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import PROJECT, run_lpkg, write_zip, zip_folders

pytestmark = pytest.mark.docker

GOOD_HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def verify_json(zip_path: Path, image: str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    run = run_lpkg("verify", zip_path, "--runtime", "python3.11", "--image", image, "--probe", "docker",
                   "--json", *extra)
    assert "Traceback" not in run.stderr
    document = json.loads(run.stdout)  # exactly one JSON document, nothing else on stdout
    return run.returncode, document["artifacts"][0] if "artifacts" in document else document


def codes(artifact: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["code"] for f in artifact["findings"]}


def finding(artifact: dict, code: str) -> dict:  # type: ignore[type-arg]
    return next(f for f in artifact["findings"] if f["code"] == code)


def test_postmortem_function_folder_alone_fails_naming_shared(tmp_path: Path, standin_image: str) -> None:
    broken = zip_folders(tmp_path / "cc.zip", {PROJECT / "compliance-checker": ""})
    status, artifact = verify_json(broken, standin_image)
    assert status == 1
    missing = finding(artifact, "IMPORT_MISSING")
    assert "'shared'" in missing["message"]
    assert (missing["member"], missing["line"]) == ("handler.py", 7)
    runtime_error = finding(artifact, "Runtime.ImportModuleError")
    assert "No module named 'shared'" in runtime_error["message"]


def test_postmortem_function_with_shared_passes(tmp_path: Path, standin_image: str) -> None:
    good = zip_folders(tmp_path / "cc.zip", {PROJECT / "compliance-checker": "", PROJECT / "shared": "shared/"})
    status, artifact = verify_json(good, standin_image)
    assert status == 0, artifact["findings"]
    assert artifact["ok"] is True
    assert artifact["probe"].startswith("docker:")
    # boto3 comes from the runtime here: worth a warning, not an error.
    assert finding(artifact, "IMPORT_RUNTIME_BOTO3")["severity"] == "warning"


def test_function_style_import_of_class_method_names_name_file_line(tmp_path: Path, standin_image: str) -> None:
    qh = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    status, artifact = verify_json(qh, standin_image)
    assert status == 1
    name_missing = finding(artifact, "IMPORT_NAME_MISSING")
    assert (name_missing["member"], name_missing["line"]) == ("handler.py", 7)
    assert "get_rds_client" in name_missing["message"]
    assert "AWSClients" in name_missing["message"]  # points at the class that has the method
    assert "get_rds_client" in finding(artifact, "Runtime.ImportModuleError")["message"]


def test_human_output_is_member_line_code(tmp_path: Path, standin_image: str) -> None:
    qh = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", qh, "--runtime", "python3.11", "--image", standin_image)
    assert run.returncode == 1
    assert "handler.py:7: IMPORT_NAME_MISSING" in run.stdout
    assert "1 failed" in run.stdout.splitlines()[-1]


def test_code_that_writes_at_import_leaves_nothing_on_the_host(tmp_path: Path, standin_image: str) -> None:
    marker = tmp_path / "written-by-packaged-code"
    package_init = (
        "import pathlib\n"
        f"for target in ({str(marker)!r}, '/tmp/lpkg-marker'):\n"
        "    try:\n"
        "        pathlib.Path(target).write_text('x')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    files = {"handler.py": "import sneaky\n" + GOOD_HANDLER, "sneaky/__init__.py": package_init}
    z = write_zip(tmp_path / "w.zip", files)
    status, artifact = verify_json(z, standin_image)
    assert status == 0, artifact["findings"]
    assert not marker.exists()
    assert not Path("/tmp/lpkg-marker").exists()


def test_task_root_is_read_only_for_the_sandbox_user(tmp_path: Path, standin_image: str) -> None:
    code = "open('/var/task/cache.json', 'w').write('{}')\n" + GOOD_HANDLER
    status, artifact = verify_json(write_zip(tmp_path / "ro.zip", {"handler.py": code}), standin_image)
    assert status == 1
    failure = finding(artifact, "INIT_WRITES_OUTSIDE_TMP")
    assert "Read-only file system" in failure["message"]
    assert (failure["member"], failure["line"]) == ("handler.py", 1)


def test_probe_has_no_network(tmp_path: Path, standin_image: str) -> None:
    """A network call at import fails in the probe, which has none; Lambda's init has it, so this is a warning
    (the rest of the import was not checked), not an error about the code."""
    code = "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)\n" + GOOD_HANDLER
    status, artifact = verify_json(write_zip(tmp_path / "net.zip", {"handler.py": code}), standin_image)
    assert status == 0, artifact["findings"]
    network = finding(artifact, "INIT_NETWORK")
    assert network["severity"] == "warning"
    assert (network["member"], network["line"]) == ("handler.py", 2)
    assert "(1.1.1.1:443)" in network["message"] and "OSError" in network["message"]
    assert "the rest of the import was not checked" in network["message"]


NETLIB_RECORD = "netlib/__init__.py,,\nnetlib-1.0.dist-info/RECORD,,\n"


def test_a_network_call_through_a_library_is_said_at_the_functions_own_line(
    tmp_path: Path, standin_image: str
) -> None:
    """The SDK's exception (urllib's URLError, wrapping the failed name lookup) is traced to the attempt, and
    the finding points at the function's line that called the library, not the library's socket call."""
    files = {
        "netlib/__init__.py": "import urllib.request\n\n\ndef fetch(url):\n"
                              "    return urllib.request.urlopen(url, timeout=5).read()\n",
        "netlib-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: netlib\nVersion: 1.0\n",
        "netlib-1.0.dist-info/RECORD": NETLIB_RECORD,
        "handler.py": "import netlib\n\nSETTINGS = netlib.fetch('http://config.example.com/settings')\n"
                      + GOOD_HANDLER,
    }
    status, artifact = verify_json(write_zip(tmp_path / "sdk.zip", files), standin_image)
    assert status == 0, artifact["findings"]
    network = finding(artifact, "INIT_NETWORK")
    assert network["severity"] == "warning"
    assert (network["member"], network["line"]) == ("handler.py", 3)
    assert "(config.example.com:80)" in network["message"]


def test_a_timeout_not_from_the_network_stays_an_error(tmp_path: Path, standin_image: str) -> None:
    """TimeoutError counts as the network's only when the import reached for a host."""
    code = ("from concurrent.futures import ThreadPoolExecutor\nimport time\n"
            "ThreadPoolExecutor(1).submit(time.sleep, 5).result(timeout=0.1)\n" + GOOD_HANDLER)
    status, artifact = verify_json(write_zip(tmp_path / "timeout.zip", {"handler.py": code}), standin_image)
    assert status == 1
    failure = finding(artifact, "INIT_EXCEPTION")
    assert (failure["member"], failure["line"]) == ("handler.py", 3)
    assert "INIT_NETWORK" not in codes(artifact)


def test_probe_has_its_own_loopback_and_localhost_resolves(tmp_path: Path, standin_image: str) -> None:
    """As in Lambda: code may serve and call itself on 127.0.0.1 and resolve `localhost` at import. The probe's
    network namespace is runc's (no Docker network sandbox), with /etc/hosts mounted by lpkg."""
    code = ("import socket, threading\n"
            "SERVER = socket.socket()\n"
            "SERVER.bind((socket.gethostbyname('localhost'), 0))\n"
            "SERVER.listen(1)\n"
            "threading.Thread(target=lambda: SERVER.accept()[0].sendall(b'pong'), daemon=True).start()\n"
            "with socket.create_connection(SERVER.getsockname(), timeout=5) as client:\n"
            "    assert client.recv(4) == b'pong'\n" + GOOD_HANDLER)
    status, artifact = verify_json(write_zip(tmp_path / "loopback.zip", {"handler.py": code}), standin_image)
    assert status == 0, artifact["findings"]
    assert artifact["ok"] is True


def test_hang_at_import_is_cut_at_the_timeout(tmp_path: Path, standin_image: str) -> None:
    code = "import time\ntime.sleep(3600)\n" + GOOD_HANDLER
    status, artifact = verify_json(write_zip(tmp_path / "hang.zip", {"handler.py": code}), standin_image,
                                   "--timeout", "3")
    assert status == 1
    hang = finding(artifact, "INIT_TIMEOUT")
    assert (hang["member"], hang["line"]) == ("handler.py", 2)  # the line that was running when it was cut


def test_a_thread_started_at_import_does_not_hold_the_import_test(tmp_path: Path, standin_image: str) -> None:
    """Lambda's init ends when the handler module is imported; a worker thread it started runs on (a metrics
    flusher, a cache warmer). The import test ends there too, instead of waiting for the thread until its
    timeout and calling that a hang."""
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()\n" + GOOD_HANDLER
    status, artifact = verify_json(write_zip(tmp_path / "thread.zip", {"handler.py": code}), standin_image,
                                   "--timeout", "5")
    assert status == 0, artifact["findings"]
    assert not artifact["findings"]


def test_syntax_error_is_reported_as_the_runtime_would(tmp_path: Path, standin_image: str) -> None:
    code = "def handler(event, context)\n    return 1\n"
    status, artifact = verify_json(write_zip(tmp_path / "syn.zip", {"handler.py": code}), standin_image)
    assert status == 1
    failure = finding(artifact, "Runtime.UserCodeSyntaxError")
    assert (failure["member"], failure["line"]) == ("handler.py", 1)


def test_missing_handler_function(tmp_path: Path, standin_image: str) -> None:
    z = write_zip(tmp_path / "nf.zip", {"app.py": GOOD_HANDLER})
    status, artifact = verify_json(z, standin_image, "--handler", "app.main")
    assert status == 1
    not_found = finding(artifact, "Runtime.HandlerNotFound")
    assert "Handler 'main' missing" in not_found["message"]
    assert not_found["member"] == "app.py"


def test_exception_at_import_names_file_and_line(tmp_path: Path, standin_image: str) -> None:
    z = write_zip(tmp_path / "ex.zip", {"handler.py": "import os\nTABLE = os.environ['TABLE_NAME']\n" + GOOD_HANDLER})
    status, artifact = verify_json(z, standin_image)
    assert status == 1
    failure = finding(artifact, "INIT_EXCEPTION")
    assert "KeyError" in failure["message"]
    assert (failure["member"], failure["line"]) == ("handler.py", 2)


def test_optional_and_lazy_imports_are_warnings(tmp_path: Path, standin_image: str) -> None:
    code = (
        "try:\n    import ujson as json\nexcept ImportError:\n    import json\n"
        "def handler(event, context):\n    import yaml\n    return json.dumps(event)\n"
    )
    status, artifact = verify_json(write_zip(tmp_path / "opt.zip", {"handler.py": code}), standin_image)
    assert status == 0, artifact["findings"]
    missing = [f for f in artifact["findings"] if f["code"] == "IMPORT_MISSING"]
    assert {(f["line"], f["severity"]) for f in missing} == {(2, "warning"), (6, "warning")}


def test_unreadable_file_fails_like_lambda(tmp_path: Path, standin_image: str) -> None:
    z = write_zip(tmp_path / "perm.zip", {"handler.py": "import secret\n" + GOOD_HANDLER, "secret.py": "X = 1\n"},
                  modes={"secret.py": 0o600})
    status, artifact = verify_json(z, standin_image)
    assert status == 1
    assert finding(artifact, "PERM_NOT_READABLE")["member"] == "secret.py"
    # The sandbox user really cannot read it, as Lambda's user cannot.
    import_failure = finding(artifact, "INIT_EXCEPTION")
    assert "PermissionError" in import_failure["message"]
    assert "Permission denied" in import_failure["message"]


def test_no_docker_daemon_is_exit_3_and_says_what_runs_without(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "h.zip", {"handler.py": GOOD_HANDLER})
    run = run_lpkg("verify", z, "--probe", "docker", env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert run.returncode == 3
    assert "no Docker daemon" in run.stderr
    assert "--probe local" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_image_is_exit_3(tmp_path: Path, standin_image: str) -> None:
    z = write_zip(tmp_path / "h.zip", {"handler.py": GOOD_HANDLER})
    run = run_lpkg("verify", z, "--probe", "docker", "--image", "lpkg-test/no-such-image:1")
    assert run.returncode == 3
    assert "no-such-image" in run.stderr
    assert "Traceback" not in run.stderr


def test_postmortem_findings_on_python_3_13(tmp_path: Path, standin_image_313: str) -> None:
    qh = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    run = run_lpkg("verify", qh, "--runtime", "python3.13", "--image", standin_image_313, "--probe", "docker",
                   "--json")
    artifact = json.loads(run.stdout)["artifacts"][0]
    assert run.returncode == 1
    name_missing = finding(artifact, "IMPORT_NAME_MISSING")
    assert (name_missing["member"], name_missing["line"]) == ("handler.py", 7)
    assert "get_rds_client" in finding(artifact, "Runtime.ImportModuleError")["message"]


def test_leftover_of_a_killed_run_is_removed_on_the_next_start(tmp_path: Path, standin_image: str) -> None:
    import socket
    import subprocess

    dead_pid = 4_000_000  # above any pid_max: no such process
    created = subprocess.run(
        ["docker", "create", "--label", "io.lpkg=1", "--label", f"io.lpkg.owner={socket.gethostname()}:{dead_pid}",
         "--entrypoint", "/bin/true", standin_image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    status, _ = verify_json(write_zip(tmp_path / "ok.zip", {"handler.py": GOOD_HANDLER}), standin_image)
    assert status == 0
    left = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"id={created}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert left == ""


def test_layer_code_is_importable_from_opt_python(tmp_path: Path, standin_image: str) -> None:
    function = write_zip(tmp_path / "fn.zip", {"handler.py": "import layered_util\n" + GOOD_HANDLER})
    layer = write_zip(tmp_path / "layer.zip", {"python/layered_util.py": "VALUE = 1\n"})
    status, artifact = verify_json(function, standin_image, "--layer", str(layer))
    assert status == 0, artifact["findings"]
    status, artifact = verify_json(function, standin_image)  # the same function without its layer
    assert status == 1
    assert "'layered_util'" in finding(artifact, "IMPORT_MISSING")["message"]


def test_copy_mode_for_daemons_that_cannot_see_this_machine(tmp_path: Path, standin_image: str) -> None:
    """LPKG_DOCKER_COPY=1: files go in as root-owned copies instead of read-only bind mounts; same verdicts."""
    qh = zip_folders(tmp_path / "qh.zip", {PROJECT / "query-handler": "", PROJECT / "shared": "shared/"})
    writes = write_zip(tmp_path / "ro.zip", {"handler.py": "open('/var/task/x', 'w')\n" + GOOD_HANDLER})
    for zip_path, code in ((qh, "IMPORT_NAME_MISSING"), (writes, "INIT_EXCEPTION")):
        run = run_lpkg("verify", zip_path, "--runtime", "python3.11", "--image", standin_image, "--probe", "docker",
                       "--json", env={"LPKG_DOCKER_COPY": "1"})
        artifact = json.loads(run.stdout)["artifacts"][0]
        assert run.returncode == 1
        assert code in codes(artifact)
