"""A real HTTP server on 127.0.0.1 for the URL tests: serves a directory from a thread, started and stopped by
the test (`with serve(DIR) as url:`). Files named in `truncate` are announced whole but cut off halfway.
`stalling(body, sent)` is a server that stalls: it accepts and never answers (sent None), or sends the headers and
the first `sent` bytes of `body` and then nothing; it holds each connection at most `hold` seconds."""

from __future__ import annotations

import socket
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


@contextmanager
def stalling(body: bytes, sent: int | None, hold: float = 10.0) -> Iterator[str]:
    """A server on 127.0.0.1 that stalls every request (see the module docstring); yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            if sent is not None:
                connection.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                connection.sendall(head + body[:sent])
            done.wait(hold)

    def accept() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join()
        listener.close()
