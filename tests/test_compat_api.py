"""erlnode.compat.py_interface has the whole public API of py_interface 2.3.

The reference is py_interface's own source: its sdist, fetched from PyPI once (pinned by its
sha256) into ~/.cache/erlnode, read with `ast` and never imported or run. Every public module
name, class, function and method of the six modules a program uses must exist in the compat
package, and accept the same parameters: the same positional parameters in the same order
and with the same names (so both positional and keyword calls keep working), a default
wherever py_interface has one, `*args`/`**kwargs` where py_interface takes them, and no extra
parameter without a default.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

VERSION = "2.3"
SDIST = f"py_interface-{VERSION}.tar.gz"
SHA256 = "7a6a33ba6019d7cf4c24963b49fbcb03492d02af571e819464992463695fe4e3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "erlnode" / "py_interface"
MODULES = ["erl_node", "erl_term", "erl_opts", "erl_common", "erl_eventhandler", "erl_epmd"]
# Private classes that programs reach through a public function (GetEventHandler()).
REACHABLE_PRIVATE_CLASSES = {("erl_eventhandler", "_EventHandler")}
# Special methods that are part of a class's behaviour for its users (calling, indexing,
# iterating), unlike __repr__/__eq__/__hash__, which every class has.
PROTOCOL_METHODS = {"__init__", "__call__", "__getitem__", "__setitem__", "__delitem__",
                    "__iter__", "__len__"}  # fmt: skip


def fetch_sdist() -> Path:
    """py_interface 2.3's sdist, downloaded on first use (pip checks the pinned hash before it
    touches the archive)."""
    path = CACHE / SDIST
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    requirements = CACHE / "requirements.txt"
    requirements.write_text(f"py_interface=={VERSION} --hash=sha256:{SHA256}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--require-hashes", "-r", str(requirements), "-d", str(CACHE), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0 or not path.exists():
        message = f"could not download {SDIST} from PyPI:\n{result.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Params:
    """A function's parameters as py_interface declares them."""

    positional: list[str]
    defaults: int  # how many of the last positional parameters have a default
    varargs: bool
    varkw: bool

    def describe(self) -> str:
        parts = list(self.positional)
        if self.varargs:
            parts.append("*args")
        if self.varkw:
            parts.append("**kwargs")
        return "(" + ", ".join(parts) + ")"


@dataclass
class Api:
    """One module's public API: functions, classes (their methods and class attributes) and
    other module-level names."""

    functions: dict[str, Params]
    classes: dict[str, tuple[dict[str, Params], set[str]]]
    names: set[str]


def params_of(fn: ast.FunctionDef, method: bool) -> Params:
    args = [a.arg for a in fn.args.args]
    if method:
        args = args[1:]
    return Params(args, len(fn.args.defaults), fn.args.vararg is not None,
                  fn.args.kwarg is not None)  # fmt: skip


def is_public(name: str) -> bool:
    return not name.startswith("_")


def read_api(source: str, module: str) -> Api:
    api = Api({}, {}, set())
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and is_public(node.name):
            api.functions[node.name] = params_of(node, method=False)
        elif isinstance(node, ast.ClassDef) and (
            is_public(node.name) or (module, node.name) in REACHABLE_PRIVATE_CLASSES
        ):
            methods: dict[str, Params] = {}
            attributes: set[str] = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (
                    is_public(item.name) or item.name in PROTOCOL_METHODS
                ):
                    methods[item.name] = params_of(item, method=True)
                elif isinstance(item, ast.Assign):
                    for target in item.targets:
                        if isinstance(target, ast.Name) and is_public(target.id):
                            attributes.add(target.id)
            api.classes[node.name] = (methods, attributes)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and is_public(target.id):
                    api.names.add(target.id)
    return api


@pytest.fixture(scope="module")
def reference() -> Iterator[dict[str, Api]]:
    with tarfile.open(fetch_sdist()) as sdist:
        apis = {}
        for module in MODULES:
            member = sdist.extractfile(f"py_interface-{VERSION}/py_interface/{module}.py")
            assert member is not None
            apis[module] = read_api(member.read().decode("utf-8"), module)
    yield apis


def mismatch(ours: Any, theirs: Params, bound: bool) -> str | None:
    """Why OURS cannot be called as py_interface's THEIRS is, or None."""
    try:
        signature = inspect.signature(ours)
    except (TypeError, ValueError):
        return "has no signature to check"
    params = list(signature.parameters.values())
    if bound and params and params[0].name in ("self", "cls"):
        params = params[1:]
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY,
                                                  kinds.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    problems = []
    for i, name in enumerate(theirs.positional):
        if i >= len(positional) or positional[i].name != name:
            found = positional[i].name if i < len(positional) else "nothing"
            problems.append(f"parameter {i + 1} should be {name!r} (found {found})")
            continue
        if positional[i].kind is not kinds.POSITIONAL_OR_KEYWORD:
            problems.append(f"{name!r} cannot be passed by keyword")
        has_default = i >= len(theirs.positional) - theirs.defaults
        if has_default and positional[i].default is kinds.empty:
            problems.append(f"{name!r} needs a default")
    for extra in positional[len(theirs.positional) :]:
        if extra.default is kinds.empty:
            problems.append(f"extra parameter {extra.name!r} has no default")
    for p in params:
        if p.kind is kinds.KEYWORD_ONLY and p.default is kinds.empty:
            problems.append(f"keyword-only parameter {p.name!r} has no default")
    if theirs.varargs and not any(p.kind is kinds.VAR_POSITIONAL for p in params):
        problems.append("takes no *args")
    if theirs.varkw and not any(p.kind is kinds.VAR_KEYWORD for p in params):
        problems.append("takes no **kwargs")
    return "; ".join(problems) or None


def missing_in(module: str, api: Api) -> list[str]:
    """Everything of py_interface's MODULE API that erlnode.compat.py_interface lacks."""
    compat = importlib.import_module(f"erlnode.compat.py_interface.{module}")
    missing = []
    for name in sorted(api.names):
        if not hasattr(compat, name):
            missing.append(f"{module}.{name}")
    for name, params in sorted(api.functions.items()):
        ours = getattr(compat, name, None)
        if ours is None or not callable(ours):
            missing.append(f"{module}.{name}{params.describe()}")
        elif problem := mismatch(ours, params, bound=False):
            missing.append(f"{module}.{name}{params.describe()}: {problem}")
    for name, (methods, attributes) in sorted(api.classes.items()):
        cls = getattr(compat, name, None)
        if not inspect.isclass(cls):
            missing.append(f"{module}.{name} (a class)")
            continue
        for attribute in sorted(attributes):
            if not hasattr(cls, attribute):
                missing.append(f"{module}.{name}.{attribute}")
        for method, params in sorted(methods.items()):
            label = f"{module}.{name}.{method}{params.describe()}"
            if method == "__init__":
                # How the class is called, whether it takes its arguments in __new__ or
                # __init__.
                if problem := mismatch(cls, params, bound=False):
                    missing.append(f"{label}: {problem}")
                continue
            ours = getattr(cls, method, None)
            if ours is None:
                missing.append(label)
            elif problem := mismatch(ours, params, bound=True):
                missing.append(f"{label}: {problem}")
    return missing


def count(api: Api) -> tuple[int, int]:
    """(names, parameters) of a module's API: what the test checks."""
    names = len(api.names) + len(api.functions)
    params = sum(len(p.positional) + p.varargs + p.varkw for p in api.functions.values())
    for methods, attributes in api.classes.values():
        names += 1 + len(methods) + len(attributes)
        params += sum(len(p.positional) + p.varargs + p.varkw for p in methods.values())
    return names, params


@pytest.mark.parametrize("module", MODULES)
def test_compat_has_every_public_name_and_parameter(reference: dict[str, Api], module: str) -> None:
    missing = missing_in(module, reference[module])
    assert not missing, f"{len(missing)} missing from compat:\n  " + "\n  ".join(missing)


def test_the_reference_is_read_in_full(reference: dict[str, Api]) -> None:
    # The parse must find py_interface's API, not an empty module that trivially passes.
    erl_node = reference["erl_node"]
    methods, attributes = erl_node.classes["ErlNode"]
    assert {"NodeUpSubscribe", "WhereisMBox", "SetEpmdConnectedOkCb"} <= set(methods)
    assert "CTRLMSGOP_SEND" in attributes
    assert "ErlEpmd" in reference["erl_epmd"].classes
    assert "SetStateStandAlone" in reference["erl_eventhandler"].classes["_EventHandler"][0]
    counts = [count(api) for api in reference.values()]
    names, params = sum(n for n, _ in counts), sum(p for _, p in counts)
    assert names > 250 and params > 150, (names, params)


def test_the_check_catches_what_is_missing() -> None:
    # A class lacking a method and a function with a renamed parameter are both reported.
    node_api = read_api("class ErlNode:\n    def Nope(self, a): pass\n", "erl_node")
    assert missing_in("erl_node", node_api) == ["erl_node.ErlNode.Nope(a)"]
    common_api = read_api("def AlignNodeName(nodeName, other): pass\n", "erl_common")
    assert missing_in("erl_common", common_api) == [
        "erl_common.AlignNodeName(nodeName, other): parameter 2 should be 'other' (found "
        "useShortNodeNames)"
    ]
