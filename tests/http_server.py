"""A real HTTP server on 127.0.0.1 for the URL tests: serves a directory from a thread, started and stopped by
the test (`with serve(DIR) as url:`). Files named in `truncate` are announced whole but cut off halfway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        relpath = self.path.lstrip("/")
        if relpath not in self.server.truncate:
            return super().do_GET()
        body = (Path(self.directory) / relpath).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


@contextmanager
def serve(directory: str | Path, truncate: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve `directory` at http://127.0.0.1:PORT (a free port) for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(directory)))
    server.truncate = set(truncate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
