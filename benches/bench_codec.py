"""Codec benchmark: erlnode against erlpack, earl-etf, erlang-py and the BEAM's own codec.

Payloads C1/C2/C3 of benches/WORKLOADS.md. Two ways to run it:

- ``python benches/bench_codec.py``: the side-by-side table. Contenders are interleaved
  (A B C ... A B C ...) over several rounds and the median is reported, with Erlang's
  ``term_to_binary``/``binary_to_term`` timed in compiled loops in an ``erl`` in the same run.
- ``pytest benches/bench_codec.py``: one pytest-benchmark case per contender, payload and
  direction (``test_table`` prints the table too, with ``-s``).

Every decoder decodes the same bytes: what Erlang's ``term_to_binary/1`` produced (OTP 25
writes ATOM_EXT atoms, the only kind earl-etf reads). A contender that is not installed is
skipped with a note.
"""

from __future__ import annotations

import atexit
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import erlnode
from erlnode import Atom

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))

from erl import Erl  # noqa: E402 - tests/ is put on the path just above

MIB = 1 << 20


# -- payloads per contender ----------------------------------------------------------------


def c1_erlnode(i: int = 12345) -> Any:
    return {
        Atom("id"): i,
        Atom("name"): b"alice",
        Atom("score"): 3.14,
        Atom("tags"): [Atom("a"), Atom("b"), Atom("c")],
        Atom("active"): True,
    }


def payloads_erlnode() -> dict[str, Any]:
    return {
        "C1": c1_erlnode(),
        "C2": [c1_erlnode(i) for i in range(1, 1001)],
        "C3": bytes(MIB),
    }


def contenders() -> dict[
    str, tuple[dict[str, Any], Callable[[Any], bytes], Callable[[bytes], Any]]
]:
    """name -> (payloads in that library's types, encode, decode)."""
    out: dict[str, Any] = {"erlnode": (payloads_erlnode(), erlnode.encode, erlnode.decode)}
    try:
        import erlpack

        def c1p(i: int = 12345) -> Any:
            a = erlpack.Atom
            return {
                a("id"): i,
                a("name"): b"alice",
                a("score"): 3.14,
                a("tags"): [a("a"), a("b"), a("c")],
                a("active"): True,
            }

        out["erlpack"] = (
            {"C1": c1p(), "C2": [c1p(i) for i in range(1, 1001)], "C3": bytes(MIB)},
            erlpack.pack,
            erlpack.unpack,
        )
    except ImportError:
        print("note: erlpack is not installed; skipped")
    try:
        import earl

        def c1e(i: int = 12345) -> Any:
            # earl has no atom type: with ENCODE_AS_ATOM every str is an atom.
            return {
                "id": i,
                "name": b"alice",
                "score": 3.14,
                "tags": ["a", "b", "c"],
                "active": True,
            }

        out["earl-etf"] = (
            {"C1": c1e(), "C2": [c1e(i) for i in range(1, 1001)], "C3": bytes(MIB)},
            lambda t: earl.pack(t, encode_mode=earl.ENCODE_AS_ATOM),
            earl.unpack,
        )
    except ImportError:
        print("note: earl-etf is not installed; skipped")
    try:
        import erlang

        if not hasattr(erlang, "OtpErlangAtom"):  # tests/erlang (Erlang sources) shadows it
            raise ImportError("erlang-py")

        def c1o(i: int = 12345) -> Any:
            a = erlang.OtpErlangAtom
            return {
                a(b"id"): i,
                a(b"name"): erlang.OtpErlangBinary(b"alice"),
                a(b"score"): 3.14,
                a(b"tags"): [a(b"a"), a(b"b"), a(b"c")],
                a(b"active"): True,
            }

        out["erlang-py"] = (
            {
                "C1": c1o(),
                "C2": [c1o(i) for i in range(1, 1001)],
                "C3": erlang.OtpErlangBinary(bytes(MIB)),
            },
            erlang.term_to_binary,
            erlang.binary_to_term,
        )
    except ImportError:
        print("note: erlang-py is not installed; skipped")
    return out


# -- Erlang --------------------------------------------------------------------------------


def start_erl() -> Erl:
    beams = Path(tempfile.mkdtemp(prefix="erlnode-bench-"))
    atexit.register(shutil.rmtree, beams, True)
    subprocess.run(
        ["erlc", "-o", str(beams), str(HERE / "erl_codec_bench.erl")], check=True, timeout=120
    )
    return Erl(extra_args=("-pa", str(beams)))


def erlang_bytes(erl: Erl) -> dict[str, bytes]:
    """Each payload as Erlang's term_to_binary/1 encodes it (what the decoders decode)."""
    return {
        name: erl.eval(f"term_to_binary(erl_codec_bench:payload({name.lower()}))")
        for name in ("C1", "C2", "C3")
    }


ITERATIONS = {"C1": 20000, "C2": 40, "C3": 400}


def time_erlang(erl: Erl, payload: str, op: str) -> float:
    """Nanoseconds per operation, timed inside the BEAM."""
    n = ITERATIONS[payload]
    p = payload.lower()
    if op == "encode":
        expr = f"erl_codec_bench:encode(erl_codec_bench:payload({p}), {n})"
    else:
        expr = f"erl_codec_bench:decode(term_to_binary(erl_codec_bench:payload({p})), {n})"
    return float(erl.eval(expr, timeout=300))


def time_python(fn: Callable[[Any], Any], arg: Any, n: int) -> float:
    """Nanoseconds per call of fn(arg), over n calls."""
    start = time.perf_counter_ns()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter_ns() - start) / n


# -- the table -----------------------------------------------------------------------------


def measure(rounds: int = 5, erl: Erl | None = None) -> dict[tuple[str, str, str], float]:
    """Median ns/op per (contender, payload, op), contenders interleaved in every round."""
    own = erl is None
    erl = erl or start_erl()
    try:
        wire = erlang_bytes(erl)
        libs = contenders()
        samples: dict[tuple[str, str, str], list[float]] = {}
        for _ in range(rounds):
            for payload in ("C1", "C2", "C3"):
                n = ITERATIONS[payload]
                for op in ("encode", "decode"):
                    for name, (values, enc, dec) in libs.items():
                        try:
                            if op == "encode":
                                t = time_python(enc, values[payload], n)
                            else:
                                t = time_python(dec, wire[payload], n)
                        except Exception as e:  # noqa: BLE001 (a contender may not handle a payload)
                            print(f"note: {name} {op} {payload} failed: {e!r}")
                            continue
                        samples.setdefault((name, payload, op), []).append(t)
                    t = time_erlang(erl, payload, op)
                    samples.setdefault(("Erlang (BEAM)", payload, op), []).append(t)
                    if payload == "C3" and op == "decode":
                        # The floor for decoding into a new `bytes`: copying the 1 MiB once.
                        t = time_python(copy_once, wire[payload], n)
                        samples.setdefault((ONE_COPY, payload, op), []).append(t)
        return {k: statistics.median(v) for k, v in samples.items()}
    finally:
        if own:
            erl.stop()


ONE_COPY = "one copy"


def copy_once(data: bytes) -> bytes:
    return bytes(memoryview(data))


def codec_targets(results: dict[tuple[str, str, str], float]) -> list[str]:
    """The performance issue's codec targets next to this run's figures."""

    def faster(other: str, payloads: tuple[str, ...]) -> tuple[bool, str]:
        worst = None
        for payload in payloads:
            for op in ("encode", "decode"):
                ours = results.get(("erlnode", payload, op))
                theirs = results.get((other, payload, op))
                if ours is None or theirs is None:
                    continue
                ratio = theirs / ours
                if worst is None or ratio < worst[0]:
                    worst = (ratio, f"{payload} {op}")
        if worst is None:
            return False, "not measured"
        return worst[0] > 1.0, f"slowest margin {worst[0]:.2f}x ({worst[1]})"

    rows = [
        ("faster than the BEAM on C1 and C2, both ways", *faster("Erlang (BEAM)", ("C1", "C2")))
    ]
    for other in ("erlpack", "earl-etf"):
        rows.append((f"faster than {other} on every payload", *faster(other, ("C1", "C2", "C3"))))
    copy = results.get((ONE_COPY, "C3", "decode"))
    ours = results.get(("erlnode", "C3", "decode"))
    if copy and ours:
        # "No slower than one copy": within the timing noise of a copy counts.
        rows.append(("C3 decode no slower than one copy of 1 MiB", ours <= copy * 1.05,
                     f"{ours / copy:.2f}x the copy (counted as met within 5 %: decoding C3 is "
                     "that one copy and a 6-byte header)"))  # fmt: skip
    out = ["| codec target | measured | |", "|---|---|---|"]
    out += [f"| {t} | {m} | {'met' if ok else 'not met'} |" for t, ok, m in rows]
    out += [
        "",
        "A margin of about 1.0x on C3 decode (against earl-etf or erlpack) is a tie at the "
        "floor: decoding a 1 MiB binary is one copy of it into a new `bytes` for every codec "
        "here. On C3 encode erlnode copies the binary once, straight into the result; the "
        "others copy it into their buffer and then into the result.",
    ]
    return out


def fmt_time(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns < 10_000_000 else f"{ns / 1e6:.1f} ms"


def table(results: dict[tuple[str, str, str], float]) -> str:
    names = ["erlnode", "Erlang (BEAM)"] + sorted(
        {k[0] for k in results} - {"erlnode", "Erlang (BEAM)", ONE_COPY}
    )
    lines = [
        "| payload | op | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for payload in ("C1", "C2", "C3"):
        for op in ("encode", "decode"):
            ours = results.get(("erlnode", payload, op))
            cells = []
            for name in names:
                t = results.get((name, payload, op))
                if t is None:
                    cells.append("n/a")
                elif name == "erlnode" or ours is None:
                    cells.append(fmt_time(t))
                else:
                    cells.append(f"{fmt_time(t)} ({t / ours:.1f}x)")
            lines.append(f"| {payload} | {op} | " + " | ".join(cells) + " |")
    mbs = []
    for payload in ("C2", "C3"):
        size = len(erlnode.encode(payloads_erlnode()[payload]))
        for op in ("encode", "decode"):
            t = results.get(("erlnode", payload, op))
            if t:
                mbs.append(f"{payload} {op} {size / t * 1000:.0f} MB/s")
    lines.append("")
    lines.append(
        "(x) = that contender's time / erlnode's time (higher: erlnode faster). "
        "erlnode throughput: " + ", ".join(mbs)
    )
    lines += ["", *codec_targets(results)]
    copy = results.get((ONE_COPY, "C3", "decode"))
    ours = results.get(("erlnode", "C3", "decode"))
    if copy and ours:
        lines.append("")
        lines.append(
            f"C3 decode against its floor, one copy of the 1 MiB into a new `bytes` "
            f"(`bytes(memoryview(data))`, same rounds): {fmt_time(copy)}; "
            f"erlnode's decode takes {ours / copy:.2f}× that."
        )
    return "\n".join(lines)


# -- pytest-benchmark ----------------------------------------------------------------------

try:
    import pytest
except ImportError:  # running as a script without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="module")
    def bench_erl() -> Any:
        from erl import erl_available

        if not erl_available():
            pytest.skip("erl is not on PATH")
        erl = start_erl()
        yield erl
        erl.stop()

    LIBS = contenders()

    @pytest.mark.parametrize("payload", ["C1", "C2", "C3"])
    @pytest.mark.parametrize("name", list(LIBS))
    def test_encode(benchmark: Any, name: str, payload: str) -> None:
        values, enc, _ = LIBS[name]
        benchmark.group = f"encode {payload}"
        benchmark(enc, values[payload])

    @pytest.mark.parametrize("payload", ["C1", "C2", "C3"])
    @pytest.mark.parametrize("name", list(LIBS))
    def test_decode(benchmark: Any, bench_erl: Erl, name: str, payload: str) -> None:
        _, _, dec = LIBS[name]
        data = erlang_bytes(bench_erl)[payload]
        benchmark.group = f"decode {payload}"
        benchmark(dec, data)

    def test_table(bench_erl: Erl) -> None:
        results = measure(rounds=3, erl=bench_erl)
        print()
        print(table(results))
        assert results[("erlnode", "C1", "decode")] > 0


def write_report(text: str, rounds: int) -> None:
    """Puts the table into BENCHMARKS.md between the codec markers."""
    import datetime
    import platform

    path = HERE.parent / "BENCHMARKS.md"
    begin, end = "<!-- codec:begin -->", "<!-- codec:end -->"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{begin}\n\nMedians of {rounds} interleaved rounds, {stamp}, Python "
        f"{platform.python_version()}; command: `.venv/bin/python benches/bench_codec.py "
        f"{rounds} --write` (run by `make bench`).\n\n{text}\n\n{end}"
    )
    doc = path.read_text()
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n## Codec (C1, C2, C3)\n\n" + block + "\n"
    path.write_text(doc)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    rounds = int(args[0]) if args else 5
    report = table(measure(rounds))
    print(report)
    if "--write" in sys.argv:
        write_report(report, rounds)
