"""py_interface's node options holder.

Only the cookie, the tick time and the short/long node name choice have an effect: erlnode
negotiates the distribution version and flags itself, so those two settings are kept for the
getters but otherwise ignored.
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


class ErlNodeOpts:
    """Options for :class:`erl_node.ErlNode`.

    ``cookie=""`` (the default) means the cookie from ``~/.erlang.cookie``, as erlnode does for
    ``cookie=None``.
    """

    def __init__(
        self,
        netTickTime: int = 60,
        shortNodeNames: int = 1,
        cookie: str = "",
        distrVersion: int = 5,
        distrFlags: int = _DEFAULT_FLAGS,
    ) -> None:
        self._netTickTime = netTickTime
        self._shortNodeNames = shortNodeNames
        self._cookie = cookie
        self._distrVersion = distrVersion
        self._distrFlags = distrFlags

    def GetNetTickTime(self) -> int:
        """The net tick time, in seconds."""
        return self._netTickTime

    def SetNetTickTime(self, netTickTime: int) -> None:
        """Sets the net tick time, in seconds."""
        self._netTickTime = netTickTime

    def GetShortNodeNames(self) -> int:
        """1 for short node names (``-sname``), 0 for long ones (``-name``)."""
        return self._shortNodeNames

    def SetShortNodeNames(self, shortNodeNames: int) -> None:
        """Chooses short (1) or long (0) node names."""
        self._shortNodeNames = shortNodeNames

    def GetCookie(self) -> str:
        """The cookie ("": the one in ``~/.erlang.cookie``)."""
        return self._cookie

    def SetCookie(self, cookie: str) -> None:
        """Sets the cookie ("": the one in ``~/.erlang.cookie``)."""
        self._cookie = cookie

    def GetDistrVersion(self) -> int:
        """The distribution version set here (erlnode negotiates its own)."""
        return self._distrVersion

    def SetDistrVersion(self, distrVersion: int) -> None:
        """Kept for compatibility: erlnode negotiates the distribution version."""
        self._distrVersion = distrVersion

    def GetDistrFlags(self) -> int:
        """The distribution flags set here (erlnode negotiates its own)."""
        return self._distrFlags

    def SetDistrFlags(self, distrFlags: int) -> None:
        """Kept for compatibility: erlnode negotiates the distribution flags."""
        self._distrFlags = distrFlags
