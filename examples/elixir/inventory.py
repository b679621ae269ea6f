"""The Python side of the Elixir example: a GenServer that Elixir calls, and answers to `send/2`.

    python examples/elixir/inventory.py py secret
    elixir --sname ex --cookie secret examples/elixir/client.exs py@$(hostname -s)

`Inventory` keeps stock counts by item. Elixir strings are UTF-8 binaries, so item names are
`bytes` here, and a Python `bytes` reaches Elixir as a string. An Elixir struct is a map with a
`__struct__` key: `%Order{}` arrives as a dict, and a dict with `__struct__` set to the atom
`Elixir.Receipt` is a `%Receipt{}` in Elixir.
"""

from __future__ import annotations

import sys
import threading
import zlib
from typing import Any

import erlnode
from erlnode import Atom

OK = Atom("ok")
STRUCT = Atom("__struct__")


class Inventory(erlnode.GenServer):
    def __init__(self) -> None:
        self.stock: dict[bytes, int] = {}
        self.stopped = threading.Event()

    def handle_call(self, request: Any, from_: Any) -> Any:
        # GenServer.call(server, {:add, "apples", 5}) -> {:ok, 5}
        if isinstance(request, tuple) and len(request) == 3 and request[0] == Atom("add"):
            _, item, count = request
            self.stock[item] = self.stock.get(item, 0) + count
            return (OK, self.stock[item])
        # GenServer.call(server, {:take, "apples", 2}) -> {:ok, 3} | {:error, :not_enough}
        if isinstance(request, tuple) and len(request) == 3 and request[0] == Atom("take"):
            _, item, count = request
            return self.take(item, count)
        # GenServer.call(server, :stock) -> %{"apples" => 3}
        if request == Atom("stock"):
            return dict(self.stock)
        # GenServer.call(server, :stop) -> :ok, then the server stops.
        if request == Atom("stop"):
            self.stop()  # from its own thread: stops after this reply
            return OK
        raise ValueError(f"unknown call {request!r}")

    def handle_info(self, message: Any) -> None:
        # send(server, %Order{item: "apples", qty: 2, from: self()})
        if isinstance(message, dict) and message.get(STRUCT) == Atom("Elixir.Order"):
            item, qty = message[Atom("item")], message[Atom("qty")]
            print(f"order: {qty} x {item.decode()}", flush=True)
            taken = self.take(item, qty)
            receipt = {
                STRUCT: Atom("Elixir.Receipt"),
                Atom("item"): item,
                Atom("qty"): qty if taken[0] == OK else 0,
                Atom("left"): self.stock.get(item, 0),
            }
            self.mailbox.send(message[Atom("from")], receipt)
        # send(server, {:blob, self(), <<...>>}): any binary, answered with its size and CRC.
        elif isinstance(message, tuple) and len(message) == 3 and message[0] == Atom("blob"):
            _, sender, data = message
            print(f"blob: {len(data)} bytes", flush=True)
            self.mailbox.send(sender, (Atom("blob"), len(data), zlib.crc32(data)))
        else:
            print(f"ignored: {erlnode.format_term(message)}", flush=True)

    def take(self, item: bytes, count: int) -> Any:
        have = self.stock.get(item, 0)
        if count > have:
            return (Atom("error"), Atom("not_enough"))
        self.stock[item] = have - count
        return (OK, self.stock[item])

    def terminate(self, reason: Any) -> None:
        self.stopped.set()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "py"
    cookie = sys.argv[2] if len(sys.argv) > 2 else None  # None: ~/.erlang.cookie
    with erlnode.Node(name, cookie=cookie) as node:
        server = Inventory.start(node, name="inventory")
        print(f"ready: {{inventory, '{node.name}'}}", flush=True)
        server.stopped.wait()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
