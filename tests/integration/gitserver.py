"""A Git server on 127.0.0.1 for tests: git's own ``git http-backend`` (smart HTTP) behind a small HTTP
server in this process, over bare repositories that the test writes with the git command.

Flux's source-controller clones over smart HTTP with go-git, which has no "dumb" HTTP support, so a static
file server would not do; ``git http-backend`` is the CGI program that real Git hosting runs behind a web
server, here with Python's HTTP server in front.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
    """git with a fixed identity and no user or system configuration (HOME is ``cwd``)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Sundial tests",
        "GIT_AUTHOR_EMAIL": "tests@sundial.invalid",
        "GIT_COMMITTER_NAME": "Sundial tests",
        "GIT_COMMITTER_EMAIL": "tests@sundial.invalid",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def publish(root: Path, name: str, tags: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Bare repository ``root/NAME.git`` with one commit per tag, in order, each holding exactly those
    files. Returns each tag's commit."""
    bare = root / f"{name}.git"
    work = root / f"{name}-work"
    work.mkdir(parents=True)
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    commits = {}
    for tag, files in tags.items():
        for stale in work.iterdir():
            if stale.name != ".git":
                stale.unlink()
        for file_name, content in files.items():
            (work / file_name).write_text(content)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "-m", f"release {tag}", cwd=work)
        git("tag", tag, cwd=work)
        commits[tag] = git("rev-parse", "HEAD", cwd=work)
    git("push", "--quiet", str(bare), "main", "--tags", cwd=work)
    shutil.rmtree(work)
    return commits


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class GitBackend(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._cgi()

        def do_POST(self) -> None:
            self._cgi()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _cgi(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(root),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            separator = b"\r\n\r\n" if b"\r\n\r\n" in result.stdout else b"\n\n"
            head, _, payload = result.stdout.partition(separator)
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            if result.returncode != 0 and not head:
                status, payload = 500, result.stderr
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return GitBackend


@contextmanager
def git_server(root: Path) -> Iterator[str]:
    """Serve the bare repositories under ``root`` while the block lasts; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root))
    thread = threading.Thread(target=server.serve_forever, name="git-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
