"""A misbehaving HTTP server for the fault suite: a raw-socket proxy in front of an API emulator.

Every request is forwarded to the emulator (so auth, signatures and data stay real); the answer then
goes back as it came, rewritten by a ``transform``, or broken on the wire: reset mid-body, truncated
body, or drip-fed one byte at a time. Raw sockets, because ``http.server`` cannot misbehave this way.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import requests

# (path, status, headers, body) -> (status, headers, body); headers are a dict of the answer's headers
Transform = Callable[[str, int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
BREAKS = ("reset", "truncate", "drip", "drip-head")


@dataclass
class Fault:
    path_contains: str = ""
    transform: Transform | None = None
    wire: str | None = None  # one of BREAKS
    drip_interval: float = 0.2


@dataclass
class FaultServer:
    upstream: str  # the emulator's root URL
    fault: Fault | None = None
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(32)
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="fault-server", daemon=True)
        self._thread.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def stop(self) -> None:
        self._stopping = True
        self._socket.close()

    def requests_to(self, path_contains: str) -> int:
        return sum(path_contains in path for path in self.seen)

    # --- internals -------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            head, body = self._read_request(conn)
            if head is None:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in header_lines if ":" in line)}
            self.seen.append(target)
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
            answer = requests.request(method, self.upstream + target, data=body, headers=forwarded, timeout=30,
                                      allow_redirects=False)
            status = answer.status_code
            out_headers = {"Content-Type": answer.headers.get("Content-Type", "application/octet-stream")}
            out_body = answer.content
            fault = self.fault
            applies = fault is not None and fault.path_contains in target
            if applies and fault.transform is not None:
                status, out_headers, out_body = fault.transform(target, status, out_headers, out_body)
            self._answer(conn, status, out_headers, out_body, fault.wire if applies else None,
                         fault.drip_interval if applies else 0)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[bytes | None, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head, rest

    @staticmethod
    def _answer(conn: socket.socket, status: int, headers: dict[str, str], body: bytes, wire: str | None,
                drip_interval: float) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        head = "\r\n".join(lines).encode("latin-1")
        if wire == "drip-head":  # the status line and headers a byte at a time, each well within a read timeout
            for byte in head:
                conn.sendall(bytes([byte]))
                time.sleep(drip_interval)
            conn.sendall(body)
            return
        conn.sendall(head)
        if wire is None:
            conn.sendall(body)
        elif wire == "truncate":
            conn.sendall(body[: len(body) // 2])
        elif wire == "reset":
            conn.sendall(body[: len(body) // 2])
            time.sleep(0.05)
            # SO_LINGER with a zero timeout makes close() send a TCP RST: a connection reset mid-body.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif wire == "drip":
            for byte in body:
                conn.sendall(bytes([byte]))
                time.sleep(drip_interval)
