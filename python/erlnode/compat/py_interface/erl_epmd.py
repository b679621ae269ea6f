"""py_interface's EPMD client: ask the Erlang Port Mapper Daemon which nodes run where, and
register a name with it.

An :class:`erl_node.ErlNode` needs none of this (erlnode registers the node itself); it is
for programs that talk to EPMD directly. As in py_interface, every answer comes to a callback
run by the event loop: each request is made on a short-lived thread of its own, which hands
the answer over to the loop.

The obsolete requests py_interface still offered are made with their current forms: ALIVE
(``AliveReq``) as ALIVE2 and PORT_PLEASE (``PortPleaseReq``) as PORT_PLEASE2, since EPMD
answers nothing else today.

Example::

    from erlnode.compat.py_interface import erl_epmd, erl_eventhandler

    def found(result, port, nodeType, proto, versions, name, extra):
        print(name, "listens on", port if result == 0 else "nothing")

    erl_epmd.ErlEpmd("localhost").PortPlease2Req("erl", found)
    erl_eventhandler.GetEventHandler().Loop()
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable

from . import erl_common, erl_eventhandler

NODETYPE_NORMAL = 77
NODETYPE_HIDDEN = 72
M = "erl_epmd"

# Distribution versions registered by Connect: 5 and 6 (OTP 23+), so current nodes connect.
_VERSIONS = (5, 6)
_TIMEOUT = 10.0


class ErlEpmdError(Exception):
    """EPMD could not be reached, or answered something unexpected (``reason`` says what).

    Example::

        try:
            epmd.Connect(on_registered, on_failed)
        except erl_epmd.ErlEpmdError as e:
            print(e.reason)
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _post(work: Callable[[], Any]) -> None:
    erl_eventhandler.GetEventHandler().Post(work)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ErlEpmdError("EPMD closed the connection")
        data += chunk
    return data


class ErlEPMDOneShotConnection:
    """One request to EPMD on a connection of its own, closed by EPMD after the answer (every
    request but ALIVE2). Used by :class:`ErlEpmd`; each method calls its CALLBACK from the
    event loop.

    Example::

        conn = erl_epmd.ErlEPMDOneShotConnection("localhost", 4369)
        conn.NamesReq(lambda epmdPort, names: print(names))
    """

    _PORT_PLEASE_REQ = 112
    _PORT_PLEASE2_REQ = 122
    _NAMES_REQ = 110
    _DUMP_REQ = 100
    _KILL_REQ = 107
    _STOP_REQ = 115
    _PORT2_RESP = 119

    def __init__(self, hostName: str, portNum: int) -> None:
        self._hostName = hostName
        self._portNum = portNum

    def PortPleaseReq(self, nodeName: str, callback: Callable[[int], Any]) -> None:
        """Looks up the port of NODENAME (the part before ``@``): ``callback(port)``, 0 when
        no such node is registered.

        Example::

            conn.PortPleaseReq("erl", lambda port: print(port))
        """

        def answer(result: int, portNum: Any, *rest: Any) -> None:
            callback(portNum if result == 0 else 0)

        self.PortPlease2Req(nodeName, answer)

    def PortPlease2Req(self, nodeName: str, callback: Callable[..., Any]) -> None:
        """Looks up NODENAME (the part before ``@``): ``callback(result, portNum, nodeType,
        protocol, versions, nodeName, extra)``, VERSIONS being the node's distribution versions
        in EPMD's order (highest, lowest), as py_interface passed them. RESULT 0 means found;
        otherwise the other arguments are None.

        Example::

            conn.PortPlease2Req("erl", lambda result, port, *rest: print(result, port))
        """
        request = bytes([self._PORT_PLEASE2_REQ]) + nodeName.encode("utf-8")
        self._SendOneShotReq(request, lambda resp: self._UnpackPortPlease2Resp(resp, callback))

    def NamesReq(self, callback: Callable[[int, str], Any]) -> None:
        """The registered names: ``callback(epmdPortNum, nodeInfo)``, NODEINFO being EPMD's
        text, one ``name NAME at port PORT`` line per node.

        Example::

            conn.NamesReq(lambda epmdPort, names: print(names))
        """
        self._SendOneShotReq(
            bytes([self._NAMES_REQ]), lambda resp: self._UnpackNamesResp(resp, callback)
        )

    def DumpReq(self, callback: Callable[[int, str], Any]) -> None:
        """EPMD's dump of its state (allowed from this host only): ``callback(epmdPortNum,
        text)``.

        Example::

            conn.DumpReq(lambda epmdPort, text: print(text))
        """
        self._SendOneShotReq(
            bytes([self._DUMP_REQ]), lambda resp: self._UnpackNamesResp(resp, callback)
        )

    def KillReq(self, callback: Callable[[str], Any]) -> None:
        """Asks EPMD to stop: ``callback("OK")``, or ``callback("NO")`` when EPMD refuses (it
        does while nodes are registered, unless started with ``-relaxed_command_check``).

        Example::

            conn.KillReq(print)
        """
        self._SendOneShotReq(bytes([self._KILL_REQ]), lambda resp: callback(resp.decode("latin-1")))

    def StopReq(self, nodeName: str, callback: Callable[[str], Any]) -> None:
        """Asks EPMD to drop NODENAME's registration (only with ``-relaxed_command_check``):
        ``callback("STOPPED")`` or ``callback("NOEXIST")``.

        Example::

            conn.StopReq("gone", print)
        """
        request = bytes([self._STOP_REQ]) + nodeName.encode("utf-8")
        self._SendOneShotReq(request, lambda resp: callback(resp.decode("latin-1")))

    def _SendOneShotReq(self, req: bytes, unpackcb: Callable[[bytes], Any]) -> None:
        def run() -> None:
            try:
                with socket.create_connection((self._hostName, self._portNum), _TIMEOUT) as s:
                    s.sendall(len(req).to_bytes(2, "big") + req)
                    chunks = []
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
            except OSError as e:
                erl_common.Debug(M, f"EPMD request {req[0]} failed: {e}")
                chunks = []
            response = b"".join(chunks)
            _post(lambda: unpackcb(response))

        threading.Thread(target=run, name="epmd request", daemon=True).start()

    @staticmethod
    def _UnpackPortPlease2Resp(resp: bytes, cb: Callable[..., Any]) -> None:
        if len(resp) < 12 or resp[1] != 0:
            cb(resp[1] if len(resp) > 1 else 1, None, None, None, None, None, None)
            return
        portNum = int.from_bytes(resp[2:4], "big")
        nodeType, protocol = resp[4], resp[5]
        versions = (int.from_bytes(resp[6:8], "big"), int.from_bytes(resp[8:10], "big"))
        nameLen = int.from_bytes(resp[10:12], "big")
        name = resp[12 : 12 + nameLen].decode("utf-8")
        extraAt = 12 + nameLen
        extraLen = int.from_bytes(resp[extraAt : extraAt + 2], "big")
        extra = resp[extraAt + 2 : extraAt + 2 + extraLen]
        cb(0, portNum, nodeType, protocol, versions, name, extra)

    @staticmethod
    def _UnpackNamesResp(resp: bytes, cb: Callable[[int, str], Any]) -> None:
        cb(int.from_bytes(resp[:4], "big"), resp[4:].decode("utf-8", "replace"))


class ErlEPMDStdConnection:
    """The lasting connection that keeps a name registered (ALIVE2): the registration lasts
    as long as the connection. Used by :class:`ErlEpmd`.

    Example::

        conn = erl_epmd.ErlEPMDStdConnection()
        conn.Connect("localhost", 4369)
        conn.Alive2Req(5555, erl_epmd.NODETYPE_HIDDEN, (5, 6), "py@host", "", print_result)
    """

    _ALIVE_REQ = 97
    _ALIVE2_REQ = 120
    _ALIVE_OK_RESP = 89
    _ALIVE2_RESP = 121
    _ALIVE2_X_RESP = 118

    def __init__(self) -> None:
        self._connection: socket.socket | None = None

    def Connect(self, hostName: str, portNum: int) -> bool:
        """Connects to EPMD at HOSTNAME:PORTNUM; False if it cannot.

        Example::

            assert conn.Connect("localhost", 4369)
        """
        try:
            self._connection = socket.create_connection((hostName, portNum), _TIMEOUT)
        except OSError as e:
            erl_common.Debug(M, f"cannot connect to EPMD at {hostName}:{portNum}: {e}")
            return False
        return True

    def Close(self) -> None:
        """Closes the connection, which ends the registration.

        Example::

            conn.Close()
        """
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def Alive2Req(
        self,
        portNum: int,
        nodeType: int,
        distrVSNRange: tuple[int, int],
        nodeName: str,
        extra: str,
        cb: Callable[[int, int], Any],
    ) -> None:
        """Registers NODENAME (the part before ``@`` counts) as listening on PORTNUM:
        ``cb(result, creation)`` from the event loop, RESULT 0 on success.

        Example::

            conn.Alive2Req(5555, erl_epmd.NODETYPE_HIDDEN, (5, 6), "py@host", "", print)
        """
        if self._connection is None:
            raise ErlEpmdError("not connected to epmd")
        alive = nodeName.split("@")[0].encode("utf-8")
        extraBytes = extra.encode("latin-1") if isinstance(extra, str) else bytes(extra)
        request = b"".join(
            [
                bytes([self._ALIVE2_REQ]),
                portNum.to_bytes(2, "big"),
                bytes([nodeType, 0]),  # protocol 0: TCP/IPv4
                distrVSNRange[1].to_bytes(2, "big"),  # the highest version comes first
                distrVSNRange[0].to_bytes(2, "big"),
                len(alive).to_bytes(2, "big"),
                alive,
                len(extraBytes).to_bytes(2, "big"),
                extraBytes,
            ]
        )
        connection = self._connection
        connection.sendall(len(request).to_bytes(2, "big") + request)

        def answer() -> None:
            try:
                tag, result = _recv_exactly(connection, 2)
                size = 4 if tag == self._ALIVE2_X_RESP else 2
                creation = int.from_bytes(_recv_exactly(connection, size), "big")
            except (OSError, ErlEpmdError) as e:
                erl_common.Debug(M, f"no answer to ALIVE2: {e}")
                tag, result, creation = 0, 1, 0
            if tag not in (self._ALIVE2_RESP, self._ALIVE2_X_RESP):
                result = result or 1
            _post(lambda: cb(result, creation))

        threading.Thread(target=answer, name="epmd alive2", daemon=True).start()

    def AliveReq(self, portNum: int, nodeName: str) -> None:
        """Registers NODENAME as a hidden node on PORTNUM, without a callback (the obsolete
        ALIVE request, made as ALIVE2).

        Example::

            conn.AliveReq(5555, "py@host")
        """
        self.Alive2Req(portNum, NODETYPE_HIDDEN, _VERSIONS, nodeName, "", lambda r, c: None)

    def AliveCloseReq(self, cb: Callable[[], Any]) -> None:
        """Ends the registration by closing the connection, then calls ``cb()``.

        Example::

            conn.AliveCloseReq(lambda: print("unregistered"))
        """
        self.Close()
        cb()


class ErlEpmd:
    """A client of the EPMD at HOSTNAME:PORTNUM.

    Example::

        epmd = erl_epmd.ErlEpmd("localhost", 4369)
        epmd.NamesReq(lambda epmdPort, names: print(names))
    """

    def __init__(self, hostName: str = "localhost", portNum: int = 4369) -> None:
        self._hostName = hostName
        self._portNum = portNum
        self._ownPortNum = 0
        self._ownNodeName = ""
        self._epmdConn: ErlEPMDStdConnection | None = None
        self.connection = None

    def SetOwnPortNum(self, ownPortNum: int) -> None:
        """The port :meth:`Connect` registers.

        Example::

            epmd.SetOwnPortNum(5555)
        """
        self._ownPortNum = ownPortNum

    def SetOwnNodeName(self, nodeName: str) -> None:
        """The node name (``alive@host``) :meth:`Connect` registers.

        Example::

            epmd.SetOwnNodeName("py@host")
        """
        self._ownNodeName = nodeName

    def Connect(
        self, connectedCb: Callable[[int], Any], connectFailedCb: Callable[[int], Any]
    ) -> None:
        """Registers the own node name and port (set first with :meth:`SetOwnNodeName` and
        :meth:`SetOwnPortNum`) as a hidden node: ``connectedCb(creation)`` or
        ``connectFailedCb(result)`` from the event loop. :class:`ErlEpmdError` when EPMD cannot
        be reached.

        Example::

            epmd.Connect(lambda creation: print("registered"), lambda result: print("refused"))
        """
        self._connectedCb = connectedCb
        self._connectFailedCb = connectFailedCb
        self._epmdConn = ErlEPMDStdConnection()
        if not self._epmdConn.Connect(self._hostName, self._portNum):
            raise ErlEpmdError("Connection to EPMD failed")
        self.Alive2Req(
            self._ownPortNum, NODETYPE_HIDDEN, _VERSIONS, self._ownNodeName, "", self._Alive2RespCb
        )

    def Close(self) -> None:
        """Ends the registration.

        Example::

            epmd.Close()
        """
        self.AliveCloseReq(self._AliveCloseSink)

    def AliveReq(self, portNum: int, nodeName: str, cb: Callable[[int], Any]) -> None:
        """Registers NODENAME on PORTNUM (as ALIVE2, after :meth:`Connect`): ``cb(creation)``.

        Example::

            epmd.AliveReq(5556, "other@host", print)
        """
        self.Alive2Req(portNum, NODETYPE_HIDDEN, _VERSIONS, nodeName, "", lambda r, c: cb(c))

    def Alive2Req(
        self,
        portNum: int,
        nodeType: int,
        distrVSNRange: tuple[int, int],
        nodeName: str,
        extra: str,
        cb: Callable[[int, int], Any],
    ) -> None:
        """See :meth:`ErlEPMDStdConnection.Alive2Req` (after :meth:`Connect`).

        Example::

            epmd.Alive2Req(5555, erl_epmd.NODETYPE_NORMAL, (5, 6), "py@host", "", print)
        """
        if self._epmdConn is None:
            raise ErlEpmdError("not connected to epmd")
        self._epmdConn.Alive2Req(portNum, nodeType, distrVSNRange, nodeName, extra, cb)

    def AliveCloseReq(self, cb: Callable[[], Any]) -> None:
        """Ends the registration, then calls ``cb()``.

        Example::

            epmd.AliveCloseReq(lambda: print("unregistered"))
        """
        if self._epmdConn is not None:
            self._epmdConn.AliveCloseReq(cb)

    def PortPleaseReq(self, nodeName: str, callback: Callable[[int], Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.PortPleaseReq`.

        Example::

            epmd.PortPleaseReq("erl", print)
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).PortPleaseReq(nodeName, callback)

    def PortPlease2Req(self, nodeName: str, callback: Callable[..., Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.PortPlease2Req`.

        Example::

            epmd.PortPlease2Req("erl", lambda result, port, *rest: print(port))
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).PortPlease2Req(nodeName, callback)

    def NamesReq(self, callback: Callable[[int, str], Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.NamesReq`.

        Example::

            epmd.NamesReq(lambda epmdPort, names: print(names))
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).NamesReq(callback)

    def DumpReq(self, callback: Callable[[int, str], Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.DumpReq`.

        Example::

            epmd.DumpReq(lambda epmdPort, text: print(text))
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).DumpReq(callback)

    def KillReq(self, callback: Callable[[str], Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.KillReq`.

        Example::

            epmd.KillReq(print)
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).KillReq(callback)

    def StopReq(self, nodeName: str, callback: Callable[[str], Any]) -> None:
        """See :meth:`ErlEPMDOneShotConnection.StopReq`.

        Example::

            epmd.StopReq("gone", print)
        """
        ErlEPMDOneShotConnection(self._hostName, self._portNum).StopReq(nodeName, callback)

    def _Alive2RespCb(self, result: int, creation: int) -> None:
        if result == 0:
            self._connectedCb(creation)
        else:
            self._connectFailedCb(result)

    def _AliveCloseSink(self) -> None:
        pass
