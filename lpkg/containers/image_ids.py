"""Image IDs straight from the Docker Engine API, without the Docker SDK.

The up-to-date check of `lpkg build` must finish in about 100 ms, and importing the SDK alone costs
more than that budget allows. Asking the daemon's local socket for `/images/<name>/json` is one short
HTTP/1.0 exchange. Everything else that talks to Docker goes through lpkg.containers.engine; here, any doubt
(a remote daemon, no answer, an unexpected reply) is answered with None, which makes the caller do a
full build instead.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse

DEFAULT_SOCKET = "/var/run/docker.sock"


def local_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    if host == "":
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return None  # tcp://, ssh://, npipe://: leave those to the SDK


def image_id(image: str, timeout: float = 2.0) -> str | None:
    """The ID of `image` as the local daemon knows it; None when it does not, or cannot say quickly."""
    path = local_socket()
    if path is None:
        return None
    request = f"GET /images/{urllib.parse.quote(image, safe='/:@')}/json HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(request.encode("ascii"))
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
    except OSError:
        return None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        return None
    try:
        found = json.loads(body).get("Id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def daemon_present() -> bool:
    """Whether a daemon listens on the local socket (so `--backend auto` would use Docker)."""
    path = local_socket()
    if path is None:
        return True  # a remote daemon: assume it answers; the caller then does a full build
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
    except OSError:
        return False
    return True
