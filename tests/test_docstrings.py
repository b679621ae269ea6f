"""The public API's docstrings: every public name has one, with an example, and the examples
that can run do run.

What counts as an example (`_has_example`):

- a doctest: a line starting with ``>>> ``. Every doctest in a public docstring is run by
  `test_the_examples_run`, as if after ``import erlnode`` and ``from erlnode import *``; so
  a ``>>>`` example must work without a network and without an Erlang node (the codec, the
  term types, `parse_term`/`format_term`, the errors they raise);
- an ``Example::`` section: the line ``Example::`` (or ``Examples::``, or with one colon)
  followed, after a blank line, by an indented code block. It is shown, not run: the way to
  write an example that needs a live Erlang node (`Node`, `Mailbox`, RPC...).

Where the docstrings live: Python-defined names in python/erlnode/*.py; the Rust classes and
functions get theirs from the ``///`` doc comments in rust/src/py/*.rs (the exceptions from
the text in their ``create_exception!``).
"""

from __future__ import annotations

import ast
import doctest
import inspect
import re
import types
from pathlib import Path
from typing import Any

import pytest

import erlnode
from erlnode.compat import py_interface


def _members(cls: type) -> list[tuple[str, Any]]:
    """The public methods, class methods and properties `cls` itself defines (not those it
    inherits: `Exception`'s, `str`'s, `collections.abc`'s)."""
    found = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if isinstance(value, property) or callable(value) or inspect.isgetsetdescriptor(value):
            found.append((attr, value))
    return found


def _undocumented_members(owner: str, cls: type) -> list[str]:
    return [f"{owner}.{attr}" for attr, value in _members(cls) if not inspect.getdoc(value)]


def _undocumented(name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        missing = [] if obj.__doc__ else [name]
        return missing + _undocumented_members(name, obj)
    if callable(obj) and not obj.__doc__:
        return [name]
    return []


def test_the_public_api_is_documented() -> None:
    missing = []
    for name in erlnode.__all__:
        missing += _undocumented(name, getattr(erlnode, name))
    assert missing == []


@pytest.mark.parametrize(
    "module",
    [getattr(py_interface, name) for name in py_interface.__all__],
    ids=lambda m: m.__name__,
)
def test_the_py_interface_compat_layer_is_documented(module: types.ModuleType) -> None:
    missing = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            missing += _undocumented(name, obj)
    assert missing == []


# -- examples --------------------------------------------------------------------------------


def _public_api() -> list[tuple[str, Any]]:
    """Every public name of `erlnode` that has a docstring of its own: the classes and
    functions of `__all__` and the members each class defines (constants are left out)."""
    api = []
    for name in erlnode.__all__:
        obj = getattr(erlnode, name)
        if inspect.isclass(obj):
            api.append((name, obj))
            api += [(f"{name}.{attr}", value) for attr, value in _members(obj)]
        elif callable(obj):
            api.append((name, obj))
    return api


_DOCTEST = re.compile(r"^[ ]*>>> ", re.M)
_EXAMPLE_SECTION = re.compile(
    r"^(?P<indent>[ ]*)Examples?::?[ ]*\n(?:[ ]*\n)+(?P=indent)[ ]+\S", re.M
)


def _has_example(doc: str) -> bool:
    return bool(_DOCTEST.search(doc) or _EXAMPLE_SECTION.search(doc))


def test_the_example_rule() -> None:
    assert _has_example(">>> 1 + 1\n2")
    assert _has_example("Text.\n\nExample::\n\n    node.ping('erl@host')\n")
    assert _has_example("Text.\n\n    Examples:\n\n        node.ping('erl@host')\n")
    assert not _has_example("Text.\n\nExample: `decode(b)` is the term.")
    assert not _has_example("Text.\n\nExample::\n\nnot indented\n")
    assert not _has_example("Text.")


def test_every_public_name_has_an_example() -> None:
    missing = [name for name, obj in _public_api() if not _has_example(inspect.getdoc(obj) or "")]
    assert missing == [], f"{len(missing)} public names have no example: {', '.join(missing)}"


#: Every docstring with a doctest, by qualified name: the package's own and the public names'.
_RUNNABLE = [
    (name, obj)
    for name, obj in [("erlnode", erlnode)]
    + [(f"erlnode.{name}", obj) for name, obj in _public_api()]
    if _DOCTEST.search(inspect.getdoc(obj) or "")
]


@pytest.mark.parametrize(("name", "obj"), _RUNNABLE, ids=[name for name, _ in _RUNNABLE])
def test_the_examples_run(name: str, obj: Any) -> None:
    globs = {"erlnode": erlnode, **{n: getattr(erlnode, n) for n in erlnode.__all__}}
    test = doctest.DocTestParser().get_doctest(inspect.getdoc(obj) or "", globs, name, None, 0)
    runner = doctest.DocTestRunner(verbose=False)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.tries > 0
    assert runner.failures == 0, "".join(report)


#: The names that need no network: their examples are doctests, which run.
NETWORK_FREE = [
    "Atom",
    "BitBinary",
    "DecodeError",
    "EncodeError",
    "ExactKey",
    "Export",
    "FrozenList",
    "FrozenMap",
    "ImproperList",
    "Pid",
    "Port",
    "Reference",
    "TermSyntaxError",
    "decode",
    "encode",
    "format_term",
    "parse_term",
]


def test_the_network_free_names_have_examples_that_run() -> None:
    runnable = {name.removeprefix("erlnode.") for name, _ in _RUNNABLE}
    expected = []
    for name in NETWORK_FREE:
        expected.append(name)
        obj = getattr(erlnode, name)
        if inspect.isclass(obj):
            expected += [f"{name}.{attr}" for attr, _ in _members(obj)]
    assert [name for name in expected if name not in runnable] == []


# -- the stubs -------------------------------------------------------------------------------


def _stub_docstrings() -> dict[str, str]:
    """The docstrings in _erlnode.pyi, by qualified name (`encode`, `TLSConfig.from_optfile`)."""
    tree = ast.parse((Path(erlnode.__file__).parent / "_erlnode.pyi").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                found[node.name] = doc
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and ast.get_docstring(item):
                    found[f"{node.name}.{item.name}"] = ast.get_docstring(item) or ""
    return found


def test_the_stub_docstrings_are_the_runtime_ones() -> None:
    """A public name whose stub (what an IDE shows) has a docstring has the runtime one."""
    stubs = _stub_docstrings()
    differing = [
        name
        for name, obj in _public_api()
        if name in stubs and stubs[name] != (inspect.getdoc(obj) or "")
    ]
    assert differing == []
