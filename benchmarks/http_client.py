"""A minimal HTTP/1.1 keep-alive load client, so the client is not what gets measured.

A general-purpose Python client (httpx, requests) spends 0.3–0.5 ms of CPU on every
call, which is as much as a fast server needs to answer one; on a small machine it also
takes the CPUs the servers need. This client sends pre-encoded requests over persistent
connections and parses only the status line and ``Content-Length`` (or a chunked body),
like ``wrk`` does. Every server in a comparison is measured with it.

* ``Connection``: one blocking connection, for sequential latency.
* ``run_concurrent``: ``concurrency`` connections on one asyncio loop, each sending its
  next request as soon as the previous answer arrives (a closed loop, like ``wrk -c``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass


class HTTPStatusError(RuntimeError):
    """A response that was not 2xx."""


def encode_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    """The bytes of one ``POST`` with a JSON body."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _head(head: bytes) -> tuple[int, int | None]:
    """Status and Content-Length (None when chunked) of a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, length


class Connection:
    """One persistent blocking connection to ``host:port``."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one encoded request; its status and body."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, length = _head(head)
        if length is None:
            return status, self._chunked()
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def _chunked(self) -> bytes:
        out = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            out.append(self.buf[:size])
            self.buf = self.buf[size + 2 :]
            if size == 0:
                return b"".join(out)

    def timed(self, request: bytes) -> float:
        """Seconds for one request; raises ``HTTPStatusError`` unless it was 2xx."""
        t0 = time.perf_counter()
        status, body = self.send(request)
        elapsed = time.perf_counter() - t0
        if not 200 <= status < 300:
            raise HTTPStatusError(f"HTTP {status}: {body[:300]!r}")
        return elapsed


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, length = _head(head[:-4])
    if length is not None:
        return status, await reader.readexactly(length)
    out = []
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        out.append(chunk[:-2])
        if size == 0:
            return status, b"".join(out)


@dataclass
class LoadResult:
    """What a closed-loop run measured."""

    latencies: list[float]
    seconds: float
    errors: int

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second of wall time."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def run_concurrent(
    host: str, port: int, requests: Sequence[bytes], concurrency: int, total: int
) -> LoadResult:
    """Send ``total`` requests (cycling through ``requests``) over ``concurrency``
    connections, each waiting for its answer before sending the next."""

    async def main() -> LoadResult:
        latencies: list[float] = []
        errors = 0
        counter = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            reader, writer = await asyncio.open_connection(host, port)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for k in counter:
                    t0 = time.perf_counter()
                    writer.write(requests[k % len(requests)])
                    status, _ = await _read_response(reader)
                    latencies.append(time.perf_counter() - t0)
                    errors += not 200 <= status < 300
            finally:
                writer.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return LoadResult(latencies, time.perf_counter() - t0, errors)

    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:
        return asyncio.run(main())
