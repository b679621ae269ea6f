"""Every example under examples/ is run by a test.

The examples themselves run in the tests that use them (the messenger's demo, client and Erlang
modules in tests/test_messenger.py and tests/test_compat_py_interface.py); this test keeps a
new example from being added without one: each file must be named in some test module.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_every_example_file_is_used_by_a_test() -> None:
    tests = {
        path.name: path.read_text()
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != Path(__file__).name
    }
    examples = sorted(
        p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".py", ".erl", ".ex")
    )
    assert examples, "no examples found"
    unused = [
        str(example.relative_to(ROOT))
        for example in examples
        if not any(example.name in source or example.stem in source for source in tests.values())
    ]
    assert unused == [], f"examples no test runs: {unused}"
