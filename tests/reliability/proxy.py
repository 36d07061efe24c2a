"""A TCP proxy on loopback that a test controls, standing between the gateway and its chain
node to inject faults:

* ``pass``    forward both ways;
* ``delay``   hold every chunk from the client for ``delay`` seconds before forwarding it
              (a slow node: the gateway's RPC timeout fires first when delay > timeout);
* ``drop``    accept connections and swallow what arrives, never answering (a black hole:
              only the client's timeout ends a request);
* ``reset``   accept and reset the connection at once (RST);
* ``refuse``  close the listening socket: connecting gets ECONNREFUSED.

Switching mode closes every open connection, so a keep-alive connection cannot carry on
past a fault. Only 127.0.0.1 is ever listened on or connected to.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["pass", "delay", "drop", "reset", "refuse"]


class ChaosProxy:
    """``ChaosProxy(upstream_port).start()``; ``url`` is what the gateway is given."""

    def __init__(self, upstream_port: int, port: int = 0, *, delay: float = 0.0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = port
        self.mode: Mode = "pass"
        self.delay = delay
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ control
    def start(self) -> ChaosProxy:
        self._listen()
        return self

    def set_mode(self, mode: Mode, *, delay: float | None = None) -> None:
        if delay is not None:
            self.delay = delay
        with self._lock:  # a connection is tracked under the mode it was accepted in (_accept_loop)
            previous, self.mode = self.mode, mode
        if mode == "refuse":
            self._close_listener()
        # After the mode changed: a client whose connection is dropped here and reconnects at
        # once meets the new mode, never a pass-through opened in between.
        self._drop_connections()
        if mode != "refuse" and (previous == "refuse" or self._listener is None):
            self._listen()

    def close(self) -> None:
        self._closed.set()
        self._close_listener()
        self._drop_connections()

    # ----------------------------------------------------------------- internals
    def _listen(self) -> None:
        if self._listener is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(100):  # the port may linger for a moment after a close
            try:
                s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise OSError(f"cannot bind 127.0.0.1:{self.port}")
        s.listen(128)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept_loop, args=(s,), name="chaos-accept", daemon=True).start()

    def _close_listener(self) -> None:
        s, self._listener = self._listener, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            _close(c)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed
            self.accepted += 1
            with self._lock:
                mode = self.mode
                if mode != "refuse":
                    self._conns.add(client)
            if mode == "refuse":  # accepted just as the listener closed: refused all the same
                _close(client)
                continue
            if mode == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            if mode == "drop":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)  # the node itself is down: the client sees the connection close
                continue
            upstream.settimeout(None)
            with self._lock:
                if self.mode != mode:  # the mode changed while connecting: this pair is dropped too
                    _close(client)
                    _close(upstream)
                    continue
                self._conns.add(upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _swallow(self, client: socket.socket) -> None:
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass
        _close(client)

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self.mode == "delay" and self.delay > 0:
                    time.sleep(self.delay)
                if from_client and self.mode == "drop":
                    continue
                dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
