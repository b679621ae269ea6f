"""py_interface's node options holder.

The cookie, the tick time, the short/long node name choice and the EPMD port have an effect.
erlnode negotiates the distribution version and flags itself, and registers with the EPMD on
this host, so those settings and the EPMD host are kept for the getters but otherwise ignored.

Example::

    from erlnode.compat.py_interface import erl_node, erl_opts

    opts = erl_opts.ErlNodeOpts(cookie="secret", shortNodeNames=0)
    node = erl_node.ErlNode("py@127.0.0.1", opts)
"""

from __future__ import annotations

# The distribution flag constants py_interface exported (values from the OTP distribution
# protocol documentation); kept so that programs that mention them still import.
DISTR_FLAG_PUBLISHED = 0x01
DISTR_FLAG_ATOMCACHE = 0x02
DISTR_FLAG_EXTENDEDREFERENCES = 0x04
DISTR_FLAG_DISTMONITOR = 0x08
DISTR_FLAG_FUNTAGS = 0x10
DISTR_FLAG_DISTMONITORNAME = 0x20
DISTR_FLAG_HIDDENATOMCACHE = 0x40
DISTR_FLAG_NEWFUNTAGS = 0x80
DISTR_FLAG_EXTENDEDPIDSPORTS = 0x100
DISTR_FLAG_EXPORTPTRTAG = 0x200
DISTR_FLAG_BITBINARIES = 0x400
DISTR_FLAG_NEWFLOATS = 0x800
DISTR_FLAG_UNICODEIO = 0x1000
DISTR_FLAG_DISTHDRATOMCACHE = 0x2000
DISTR_FLAG_SMALLATOMTAGS = 0x4000
DISTR_FLAG_INTERNALTAGS = 0x8000
DISTR_FLAG_UTF8ATOMS = 0x10000
DISTR_FLAG_MAPTAG = 0x20000

_DEFAULT_FLAGS = (
    DISTR_FLAG_EXTENDEDREFERENCES
    | DISTR_FLAG_EXTENDEDPIDSPORTS
    | DISTR_FLAG_FUNTAGS
    | DISTR_FLAG_NEWFUNTAGS
    | DISTR_FLAG_EXPORTPTRTAG
    | DISTR_FLAG_BITBINARIES
    | DISTR_FLAG_NEWFLOATS
    | DISTR_FLAG_UTF8ATOMS
    | DISTR_FLAG_MAPTAG
)

# Where py_interface looked for EPMD. The default port stands for erlnode's default: the
# ERL_EPMD_PORT environment variable, else 4369, as for erl.
EPMD_PORT = 4369
EPMD_HOST = "localhost"


class ErlNodeOpts:
    """Options for :class:`erl_node.ErlNode`.

    ``cookie=""`` (the default) means the cookie from ``~/.erlang.cookie``, as erlnode does for
    ``cookie=None``.

    Example::

        opts = ErlNodeOpts(cookie="secret")
        opts.SetNetTickTime(15)
        assert opts.GetCookie() == "secret" and opts.GetShortNodeNames() == 1
    """

    def __init__(
        self,
        netTickTime: int = 60,
        shortNodeNames: int = 1,
        cookie: str = "",
        distrVersion: int = 5,
        epmdPort: int = EPMD_PORT,
        epmdHost: str = EPMD_HOST,
        distrFlags: int = _DEFAULT_FLAGS,
    ) -> None:
        self._netTickTime = netTickTime
        self._shortNodeNames = shortNodeNames
        self._cookie = cookie
        self._distrVersion = distrVersion
        self._distrFlags = distrFlags
        self._epmdPort = epmdPort
        self._epmdHost = epmdHost

    def GetNetTickTime(self) -> int:
        """The net tick time, in seconds.

        Example::

            assert ErlNodeOpts(netTickTime=15).GetNetTickTime() == 15
        """
        return self._netTickTime

    def SetNetTickTime(self, netTickTime: int) -> None:
        """Sets the net tick time, in seconds.

        Example::

            opts = ErlNodeOpts()
            opts.SetNetTickTime(15)
        """
        self._netTickTime = netTickTime

    def GetEpmdPort(self) -> int:
        """The port of the EPMD the node registers with.

        Example::

            assert ErlNodeOpts().GetEpmdPort() == EPMD_PORT
        """
        return self._epmdPort

    def SetEpmdPort(self, epmdPort: int) -> None:
        """Sets the port of the EPMD the node registers with.

        Example::

            opts = ErlNodeOpts()
            opts.SetEpmdPort(4370)
        """
        self._epmdPort = epmdPort

    def GetEpmdHost(self) -> str:
        """The EPMD host set here (erlnode registers with the EPMD on this host).

        Example::

            assert ErlNodeOpts().GetEpmdHost() == "localhost"
        """
        return self._epmdHost

    def SetEpmdHost(self, epmdHost: str) -> None:
        """Kept for compatibility: erlnode registers with the EPMD on this host.

        Example::

            ErlNodeOpts().SetEpmdHost("localhost")
        """
        self._epmdHost = epmdHost

    def GetShortNodeNames(self) -> int:
        """1 for short node names (``-sname``), 0 for long ones (``-name``).

        Example::

            assert ErlNodeOpts(shortNodeNames=0).GetShortNodeNames() == 0
        """
        return self._shortNodeNames

    def SetShortNodeNames(self, shortNodeNames: int) -> None:
        """Chooses short (1) or long (0) node names.

        Example::

            opts = ErlNodeOpts()
            opts.SetShortNodeNames(0)    # names like py@host.example.com
        """
        self._shortNodeNames = shortNodeNames

    def GetCookie(self) -> str:
        """The cookie ("": the one in ``~/.erlang.cookie``).

        Example::

            assert ErlNodeOpts(cookie="secret").GetCookie() == "secret"
        """
        return self._cookie

    def SetCookie(self, cookie: str) -> None:
        """Sets the cookie ("": the one in ``~/.erlang.cookie``).

        Example::

            opts = ErlNodeOpts()
            opts.SetCookie("secret")
        """
        self._cookie = cookie

    def GetDistrVersion(self) -> int:
        """The distribution version set here (erlnode negotiates its own).

        Example::

            assert ErlNodeOpts().GetDistrVersion() == 5
        """
        return self._distrVersion

    def SetDistrVersion(self, distrVersion: int) -> None:
        """Kept for compatibility: erlnode negotiates the distribution version.

        Example::

            ErlNodeOpts().SetDistrVersion(6)
        """
        self._distrVersion = distrVersion

    def GetDistrFlags(self) -> int:
        """The distribution flags set here (erlnode negotiates its own).

        Example::

            assert ErlNodeOpts().GetDistrFlags() & DISTR_FLAG_UTF8ATOMS
        """
        return self._distrFlags

    def SetDistrFlags(self, distrFlags: int) -> None:
        """Kept for compatibility: erlnode negotiates the distribution flags.

        Example::

            ErlNodeOpts().SetDistrFlags(DISTR_FLAG_UTF8ATOMS | DISTR_FLAG_MAPTAG)
        """
        self._distrFlags = distrFlags
