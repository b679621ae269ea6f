"""TLS distribution against a real OTP node started with ``-proto_dist inet_tls``.

Throwaway certificates are made here with the openssl command line: a CA, and leaves with
``CA:FALSE``, serverAuth and clientAuth, and the names of this host (as rustls and OTP both
want them; see docs/security.md). Every refusal must be clear and on time on our side.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from erl import HOST_OTP, OTP_RELEASES, Erl, Otp, random_name, wait_until

import erlnode
from erlnode import Atom

HOST = socket.gethostname().split(".")[0]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA and leaves signed by it, in one directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = name
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign",
            cwd=directory,
        )  # fmt: skip
        self.ca = directory / f"{name}.pem"

    def leaf(self, file: str, hosts: list[str] | None = None, days: int = 2) -> tuple[Path, Path]:
        """A leaf for both roles; `days=-1` makes one that has expired."""
        names = hosts or ["localhost", HOST, "127.0.0.1"]
        sans = ",".join(f"DNS:{h}" for h in names)
        if hosts is None:
            sans += ",IP:127.0.0.1"
        ext = self.dir / f"{file}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={sans}\n"
        )
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={file}", "-keyout", f"{file}.key", "-out", f"{file}.csr",
            cwd=self.dir,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{file}.csr", "-CA", self.ca.name,
            "-CAkey", f"{self.name}.key", "-CAcreateserial", "-days", str(days),
            "-extfile", ext.name, "-out", f"{file}.pem",
            cwd=self.dir,
        )  # fmt: skip
        return self.dir / f"{file}.pem", self.dir / f"{file}.key"

    def optfile(self, file: str, cert: Path, key: Path, versions: str | None = None) -> Path:
        """An `-ssl_dist_optfile` for mutual TLS with `cert`, as OTP's guide writes one."""
        common = f'{{certfile, "{cert}"}}, {{keyfile, "{key}"}}, {{cacertfile, "{self.ca}"}}'
        extra = f", {{versions, [{versions}]}}" if versions else ""
        path = self.dir / file
        path.write_text(
            f"[{{server, [{common}, {{verify, verify_peer}}, "
            f"{{fail_if_no_peer_cert, true}}{extra}]}},\n"
            f" {{client, [{common}, {{verify, verify_peer}}{extra}]}}].\n"
        )
        return path


@pytest.fixture(scope="module")
def pki() -> Iterator[dict[str, Any]]:
    # Under /tmp, so that a copy at the same path inside an OTP root (see `tls_erl`) lets
    # that root's nodes read the same optfiles.
    directory = Path(tempfile.mkdtemp(prefix="erlnode-tls-", dir="/tmp"))
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        for otp in OTP_RELEASES:
            if otp.root is not None:
                shutil.rmtree(otp.root / directory.relative_to("/"), ignore_errors=True)


def make_pki(directory: Path) -> dict[str, Any]:
    ca = Pki(directory, "test-ca")
    other = Pki(directory, "other-ca")
    cert, key = ca.leaf("node")
    return {
        "ca": ca,
        "cert": cert,
        "key": key,
        "optfile": ca.optfile("dist.conf", cert, key),
        "optfile13": ca.optfile("dist13.conf", cert, key, "'tlsv1.3', 'tlsv1.2'"),
        "other": other,
    }


def tls_erl(optfile: Path, otp: Otp = HOST_OTP) -> Erl:
    """An Erlang node of `otp` with TLS distribution from `optfile` (copied, with the files it
    names, to the same path inside the release's root when it has one)."""
    if otp.root is not None:
        inside = otp.root / optfile.parent.relative_to("/")
        shutil.copytree(optfile.parent, inside, dirs_exist_ok=True)
    return Erl(
        otp=otp,
        extra_args=["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile)],
    )


@pytest.fixture
def tls_pair(pki: dict[str, Any], otp: Otp) -> Iterator[tuple[Erl, erlnode.Node]]:
    erl = tls_erl(pki["optfile"], otp)
    tls = erlnode.TLSConfig(pki["cert"], pki["key"], pki["ca"].ca)
    node = None
    try:
        node = erlnode.Node(random_name("py"), cookie=erl.cookie, tls=tls)
        yield erl, node
    finally:
        if node is not None:
            node.close()
        erl.stop()


CORPUS: list[Any] = [
    Atom("ok"),
    42,
    -(2**70),
    3.25,
    b"\x00\x01binary",
    "a string",
    [1, [2, (3, Atom("x"))]],
    {Atom("k"): [1.5, b"v"], 7: (Atom("t"),)},
    erlnode.ImproperList([1, 2], Atom("tail")),
    erlnode.BitBinary(b"\xe0", 3),
    bytes(range(256)) * 1024,
]


every_otp = pytest.mark.parametrize("otp", OTP_RELEASES, ids=str)


@every_otp
def test_ping_messages_and_rpc_both_ways_over_tls(tls_pair: tuple[Erl, erlnode.Node]) -> None:
    erl, node = tls_pair
    assert node.tls
    assert node.ping(erl.name)
    assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
    # The connection is TLS on the Erlang side too.
    assert erl.eval(f"net_kernel:node_info('{node.name}', address)")[1][3] == Atom("tls")
    mbox = node.mailbox("echo_tls")
    erl.eval("Echo = spawn(fun Loop() -> receive {From, M} -> From ! {echo, M}, Loop() end end)")
    echo = erl.eval("Echo")
    for term in CORPUS:
        mbox.send(echo, (mbox.pid, term))
        assert mbox.receive(timeout=10) == (Atom("echo"), term)
    assert node.rpc(erl.name, "erlang", "node", []) == Atom(erl.name)
    node.expose("pytls", {"add": lambda a, b: a + b})
    assert erl.eval(f"rpc:call('{node.name}', pytls, add, [2, 40])") == 42
    assert erl.eval(f"erpc:call('{node.name}', pytls, add, [1, 1])") == 2


@every_otp
def test_tls_1_2_and_1_3_as_the_peer_allows(pki: dict[str, Any], otp: Otp) -> None:
    # An optfile naming only 1.2 (OTP 25's default for distribution) or only 1.3 forces that
    # version: a node that connects to each spoke it; one limited to 1.3 cannot meet 1.2.
    only_13 = pki["ca"].optfile("only13.conf", pki["cert"], pki["key"], "'tlsv1.3'")
    only_12 = pki["ca"].optfile("only12.conf", pki["cert"], pki["key"], "'tlsv1.2'")
    default = erlnode.TLSConfig(pki["cert"], pki["key"], pki["ca"].ca)
    for optfile in (pki["optfile"], only_12, only_13, pki["optfile13"]):
        erl = tls_erl(optfile, otp)
        try:
            with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=default) as node:
                assert node.ping(erl.name), optfile.name
        finally:
            erl.stop()
    erl = tls_erl(only_12, otp)
    try:
        tls13 = erlnode.TLSConfig(pki["cert"], pki["key"], pki["ca"].ca, versions=["tlsv1.3"])
        assert tls13.versions == ["tlsv1.3"]
        with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=tls13) as node:
            assert not node.ping(erl.name, timeout=10)
    finally:
        erl.stop()


def refused_quickly(node: erlnode.Node, peer: str) -> bool:
    started = time.monotonic()
    result = node.ping(peer, timeout=10)
    assert time.monotonic() - started < 9, "a refusal must not wait for the ping timeout"
    return result


def test_refusals_are_clear_and_on_time(
    pki: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    erl = tls_erl(pki["optfile"])
    try:
        ca, other = pki["ca"], pki["other"]
        cases = {
            "certificate signed by unknown CA": erlnode.TLSConfig(
                *other.leaf("stranger"), other.ca
            ),
            # OTP refuses an expired client certificate with an alert.
            "the peer refused the handshake": erlnode.TLSConfig(
                *ca.leaf("expired", days=-1), ca.ca
            ),
        }
        for reason, tls in cases.items():
            # Dialing: the Erlang node's certificate is checked against our CA (the first
            # case), or the Erlang node refuses ours (the second). OTP checks no host name
            # in a client's certificate: that case is the next test's, in our role.
            with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=tls) as node:
                assert not refused_quickly(node, erl.name), reason
            # The core's WARNING record says why.
            line = f"TLS handshake with {erl.name} failed: {reason}"
            assert wait_until(lambda line=line: line in caplog.text), caplog.text
        # A plain TCP node dialing the TLS node, and the TLS node dialing a plain one.
        with erlnode.Node(random_name("py"), cookie=erl.cookie, handshake_timeout=2) as plain:
            assert not refused_quickly(plain, erl.name)
        plain_erl = Erl()
        try:
            tls = erlnode.TLSConfig(pki["cert"], pki["key"], ca.ca)
            with erlnode.Node(
                random_name("py"), cookie=plain_erl.cookie, tls=tls, handshake_timeout=2
            ) as node:
                assert not refused_quickly(node, plain_erl.name)
        finally:
            plain_erl.stop()
        # The TLS Erlang node still serves a good client.
        good = erlnode.TLSConfig(pki["cert"], pki["key"], ca.ca)
        with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=good) as node:
            assert node.ping(erl.name)
    finally:
        erl.stop()


def test_erlang_nodes_with_bad_certificates_are_refused(pki: dict[str, Any]) -> None:
    ca, other = pki["ca"], pki["other"]
    good = erlnode.TLSConfig(pki["cert"], pki["key"], ca.ca)
    stranger_cert, stranger_key = other.leaf("erl-stranger")
    expired_cert, expired_key = ca.leaf("erl-expired", days=-1)
    elsewhere_cert, elsewhere_key = ca.leaf("erl-elsewhere", ["elsewhere.example"])
    optfiles = [
        other.optfile("stranger.conf", stranger_cert, stranger_key),
        ca.optfile("expired.conf", expired_cert, expired_key),
        # Valid, but for another host: we refuse it as a server certificate, and as a
        # client's (the node name it claims is not on a host it names: not_allowed).
        ca.optfile("elsewhere.conf", elsewhere_cert, elsewhere_key),
    ]
    for optfile in optfiles:
        erl = tls_erl(optfile)
        try:
            with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=good) as node:
                assert not refused_quickly(node, erl.name), optfile.name
                # And the Erlang node cannot get in either.
                assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pang")
        finally:
            erl.stop()


def test_python_nodes_over_tls_and_the_allow_list(pki: dict[str, Any]) -> None:
    tls = erlnode.TLSConfig.from_optfile(pki["optfile"])
    cookie = random_name("cookie")
    with (
        erlnode.Node(random_name("a"), cookie=cookie, tls=tls, allowed_nodes=["nobody@"]) as a,
        erlnode.Node(random_name("b"), cookie=cookie, tls=tls) as b,
    ):
        assert not b.ping(a.name), "b is not on a's allow list"
        a.allow(b.name)
        assert a.allowed_nodes == ["nobody@", b.name]
        assert b.ping(a.name)
        inbox = a.mailbox("inbox")
        b.send(("inbox", a.name), (Atom("hello"), b"over tls"))
        assert inbox.receive(timeout=5) == (Atom("hello"), b"over tls")


def test_tls_config_errors_name_what_is_wrong(pki: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nonexistent.pem"):
        erlnode.TLSConfig(tmp_path / "nonexistent.pem", pki["key"], pki["ca"].ca)
    with pytest.raises(ValueError, match="tlsv1.2"):
        erlnode.TLSConfig(pki["cert"], pki["key"], pki["ca"].ca, versions=["sslv3"])
    bad = tmp_path / "bad.conf"
    bad.write_text(
        f'[{{server, [{{certfile, "{pki["cert"]}"}}, {{secure_renegotiate, true}}]}},'
        f' {{client, [{{certfile, "{pki["cert"]}"}}]}}].'
    )
    with pytest.raises(ValueError, match="secure_renegotiate"):
        erlnode.TLSConfig.from_optfile(bad)
    bad.write_text("[{server, [}")
    with pytest.raises(ValueError, match="line 1"):
        erlnode.TLSConfig.from_optfile(bad)
    config = erlnode.TLSConfig.from_optfile(pki["optfile"])
    assert config.verify and config.cafile == pki["ca"].ca
    assert "from_optfile" in repr(config)


def test_a_silent_client_does_not_stop_others(tls_pair: tuple[Erl, erlnode.Node]) -> None:
    erl, node = tls_pair
    silent = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(5)]
    try:
        assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
        assert wait_until(lambda: erl.name in node.connected_nodes())
    finally:
        for s in silent:
            s.close()


def test_large_binaries_over_tls_land_in_their_bytes(tls_pair: tuple[Erl, erlnode.Node]) -> None:
    # Over TLS, rustls decrypts into its own buffer and copies the plaintext straight into
    # the bytes object (no copy of ours beyond that): counted as landed.
    from test_bulk_receive import BULK_MIN, FRAGMENT, check_stream, send_binaries

    erl, node = tls_pair
    mbox = node.mailbox("bulk_tls")
    assert node.ping(erl.name)
    sizes = [BULK_MIN, 3 * FRAGMENT + 7, 8 << 20]
    sums = send_binaries(erl, f"{{bulk_tls, '{node.name}'}}", sizes)
    check_stream([mbox.receive(timeout=60) for _ in range(3 * len(sizes))], sums, sizes)
    conn = node.stats()["connections"][erl.name]
    assert conn["bulk_landed"] > conn["bulk_copied"], conn
