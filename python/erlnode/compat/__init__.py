"""Compatibility layers: run programs written for other Python–Erlang libraries on erlnode.

* :mod:`erlnode.compat.py_interface` — the API of py_interface (Tomas Abrahamsson's pure-Python
  Erlang node). Change ``from py_interface import ...`` to
  ``from erlnode.compat.py_interface import ...`` and the program runs on erlnode.
"""
