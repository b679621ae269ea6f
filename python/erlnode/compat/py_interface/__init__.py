"""py_interface's API on top of erlnode.

A py_interface program runs with only its import line changed::

    from erlnode.compat.py_interface import erl_node, erl_opts, erl_term, erl_eventhandler

The modules keep py_interface's names and calling conventions (``ErlNode``, ``CreateMBox``,
``Send``, ``AddTimerEvent``, ``Loop``, the ``Erl*`` term constructors...), and, as in
py_interface, mailbox callbacks and timers all run on the one thread that calls
``erl_eventhandler.GetEventHandler().Loop()``. docs/compat.md lists what differs.
"""

from . import erl_common, erl_epmd, erl_eventhandler, erl_node, erl_opts, erl_term

__all__ = ["erl_common", "erl_epmd", "erl_eventhandler", "erl_node", "erl_opts", "erl_term"]
