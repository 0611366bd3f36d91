"""`circuits view --serve`: the run directory over HTTP on 127.0.0.1 only, on a free port.

It serves the files of the run directory and nothing else: a request path is decoded once, and
refused (404) when it is absolute once the leading slash is dropped, holds a `..`, `.`, empty
or backslashed segment or a NUL, or resolves (symbolic links followed) outside the directory.
Only GET and HEAD are answered, plus one POST, `/supernodes`, with which the page saves its
groups into graph.json (`qParams.supernodes`) and graph.html: it needs the random token that
the server writes into the page it serves, a `Host` of this server and a JSON body, so another
site open in the browser cannot write through it.
"""

import json
import logging
import mimetypes
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from circuits.run.export import check_supernodes, write_json
from circuits.view.page import PAGE_NAME, SAVE_META, write_page

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 1 << 20
"""Largest POST body (bytes)."""


def resolve_request_path(root: Path, url_path: str) -> Path | None:
    """The file under the directory `root` that the request path `url_path` names (`/` names
    graph.html), or None where it names anything else (see the module docstring)."""
    root = Path(root).resolve()
    path = unquote(urlsplit(url_path).path, errors="strict")
    if not path.startswith("/") or "\0" in path or "\\" in path:
        return None
    rel = path[1:] or PAGE_NAME
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
        return None
    candidate = (root / Path(*parts)).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate if candidate.is_file() else None


class ViewServer(ThreadingHTTPServer):
    """An HTTP server over one run directory; `url` is its address."""

    daemon_threads = True

    def __init__(self, run_dir: Path, port: int = 0) -> None:
        self.root = Path(run_dir).resolve()
        self.token = secrets.token_urlsafe(24)
        self.lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def page(self) -> bytes:
        """graph.html with this server's save token in it."""
        text = (self.root / PAGE_NAME).read_text(encoding="utf-8")
        meta = f'<meta name="circuits-save" content="{self.token}">'
        return text.replace(SAVE_META, meta, 1).encode("utf-8")

    def save_supernodes(self, supernodes: Any) -> int:
        """Write `supernodes` into graph.json's `qParams.supernodes` and rewrite graph.html."""
        with self.lock:
            graph = json.loads((self.root / "graph.json").read_text())
            ids = [n["node_id"] for n in graph["nodes"]]
            graph.setdefault("qParams", {})["supernodes"] = check_supernodes(supernodes, ids)
            write_json(graph, self.root / "graph.json")
            write_page(self.root)
        return len(graph["qParams"]["supernodes"])


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    server_version = "circuits-view"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, "application/json")

    def _get(self, head: bool) -> None:
        try:
            path = resolve_request_path(self.server.root, self.path)
        except UnicodeDecodeError:
            path = None
        if path is None:
            self._error(HTTPStatus.NOT_FOUND, "not a file of this run directory")
            return
        if path == self.server.root / PAGE_NAME:
            body, kind = self.server.page(), "text/html; charset=utf-8"
        else:
            body = path.read_bytes()
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, kind, head=head)

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_POST(self) -> None:
        port = self.server.server_address[1]
        if urlsplit(self.path).path != "/supernodes":
            self._error(HTTPStatus.NOT_FOUND, "the only POST is /supernodes")
            return
        if self.headers.get("Host") not in (f"{HOST}:{port}", f"localhost:{port}"):
            self._error(HTTPStatus.FORBIDDEN, "wrong Host")
            return
        if not secrets.compare_digest(self.headers.get("X-Circuits-Token", ""), self.server.token):
            self._error(HTTPStatus.FORBIDDEN, "missing or wrong token: reload the page")
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body must be 1..{MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length))
            n = self.server.save_supernodes(
                body.get("supernodes") if isinstance(body, dict) else None
            )
        except ValueError as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err))
            return
        self._send(HTTPStatus.OK, json.dumps({"supernodes": n}).encode(), "application/json")
