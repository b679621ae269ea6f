"""A hand-made distribution peer for the hostile-peer tests.

``RawPeer`` opens a TCP connection to a node's distribution port and speaks the handshake
(version 6, the initiator's side) by hand, byte by byte as the protocol describes it, so that
a test can then send whatever frames it likes: a well-formed message, a frame over the
node's size limit, a fragmented message that never ends, garbage. Nothing here uses erlnode's
own handshake: the bytes are the protocol's, not our implementation's idea of it.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import time

import erlnode
from erlnode import Atom

# The distribution flags this peer advertises: every flag the node requires (OTP 26's
# mandatory set), the distribution header with its atom cache, and fragments.
EXTENDED_REFERENCES = 0x4
DIST_MONITOR = 0x8
FUN_TAGS = 0x10
NEW_FUN_TAGS = 0x80
EXTENDED_PIDS_PORTS = 0x100
EXPORT_PTR_TAG = 0x200
BIT_BINARIES = 0x400
NEW_FLOATS = 0x800
DIST_HDR_ATOM_CACHE = 0x2000
UTF8_ATOMS = 0x10000
MAP_TAG = 0x20000
BIG_CREATION = 0x40000
FRAGMENTS = 0x800000
HANDSHAKE_23 = 0x1000000
UNLINK_ID = 0x2000000
V4_NC = 1 << 34
FLAGS = (
    EXTENDED_REFERENCES
    | DIST_MONITOR
    | FUN_TAGS
    | NEW_FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | DIST_HDR_ATOM_CACHE
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | FRAGMENTS
    | HANDSHAKE_23
    | UNLINK_ID
    | V4_NC
)

VERSION = 131
PASS_THROUGH = 112
HEADER = 68
FRAGMENT_FIRST = 69
FRAGMENT_CONT = 70


class HandshakeFailed(RuntimeError):
    pass


class RawPeer:
    """A connection to `port` on loopback; `handshake` makes it a distribution peer named
    `name` (a full `alive@host`) of a node named `node` with `cookie`."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.creation = 0x1234_5678

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the handshake -----------------------------------------------------------------

    def _send_hs(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">H", len(body)) + body)

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise HandshakeFailed(f"connection closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def _recv_hs(self) -> bytes:
        (length,) = struct.unpack(">H", self._recv_exact(2))
        return self._recv_exact(length)

    def handshake(self, name: str, node: str, cookie: str) -> None:
        """The initiator's side: send_name, status, challenge, challenge reply, ack."""
        encoded = name.encode()
        self._send_hs(b"N" + struct.pack(">QIH", FLAGS, self.creation, len(encoded)) + encoded)
        status = self._recv_hs()
        if status != b"sok":
            raise HandshakeFailed(f"status {status!r}")
        challenge = self._recv_hs()
        if challenge[:1] != b"N":
            raise HandshakeFailed(f"expected a challenge, got {challenge!r}")
        _flags, their_challenge, _creation, name_len = struct.unpack(">QIIH", challenge[1:19])
        if challenge[19 : 19 + name_len].decode() != node:
            raise HandshakeFailed(f"the challenge comes from {challenge[19:]!r}, not {node}")
        ours = secrets.randbits(32)
        digest = hashlib.md5(f"{cookie}{their_challenge}".encode()).digest()
        self._send_hs(b"r" + struct.pack(">I", ours) + digest)
        ack = self._recv_hs()
        expected = hashlib.md5(f"{cookie}{ours}".encode()).digest()
        if ack != b"a" + expected:
            raise HandshakeFailed(f"bad challenge ack {ack!r}")

    # -- frames after the handshake -------------------------------------------------------

    def send_frame(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def tick(self) -> None:
        self.sock.sendall(b"\0\0\0\0")

    def send_message(self, to: erlnode.Pid, message: object) -> None:
        """`{2, '', To}` and the message, as a pass-through frame."""
        control = erlnode.encode((2, Atom(""), to))
        self.send_frame(bytes([PASS_THROUGH]) + control + erlnode.encode(message))

    @staticmethod
    def message_body(to: erlnode.Pid, message: object) -> bytes:
        """The control message and the message, without version bytes, as a distribution
        header frame (or a fragment sequence) carries them."""
        return erlnode.encode((2, Atom(""), to))[1:] + erlnode.encode(message)[1:]

    def send_first_fragment(self, seq: int, fragments: int, data: bytes) -> None:
        """The first of `fragments` fragments of sequence `seq` (no atom cache refs)."""
        header = bytes([VERSION, FRAGMENT_FIRST]) + struct.pack(">QQ", seq, fragments) + b"\0"
        self.send_frame(header + data)

    def send_fragment(self, seq: int, fragment: int, data: bytes) -> None:
        header = bytes([VERSION, FRAGMENT_CONT]) + struct.pack(">QQ", seq, fragment)
        self.send_frame(header + data)

    def wait_closed(self, timeout: float) -> float | None:
        """Reads (and drops: ticks, anything) until the node closes the connection; returns
        how long that took, or None if it stayed open for `timeout` seconds."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(65536):
                    return time.monotonic() - start
            except socket.timeout:
                return None
            except ConnectionResetError:
                return time.monotonic() - start
