"""Every public class, function, method and property of the package has a docstring."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

import erlnode
from erlnode.compat import py_interface


def _undocumented_members(owner: str, cls: type) -> list[str]:
    missing = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if isinstance(value, property) or callable(value) or inspect.isgetsetdescriptor(value):
            if not inspect.getdoc(value):
                missing.append(f"{owner}.{attr}")
    return missing


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
