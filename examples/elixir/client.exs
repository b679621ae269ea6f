# The Elixir side of the example: GenServer.call and send/2 with a Python node.
#
#   python examples/elixir/inventory.py py secret
#   elixir --sname ex --cookie secret examples/elixir/client.exs py@$(hostname -s)
#
# A plain `elixir` script: no Mix project. The Python server is registered as `inventory` on
# the Python node, so `{:inventory, node}` reaches it like any registered process.

defmodule Order do
  defstruct [:item, :qty, :from]
end

defmodule Receipt do
  defstruct [:item, :qty, :left]
end

defmodule Client do
  def main([node_name]) do
    python = String.to_atom(node_name)
    server = {:inventory, python}
    true = Node.connect(python)

    # GenServer.call: the Python handle_call answers.
    IO.inspect(GenServer.call(server, {:add, "apples", 5}), label: "add apples")
    IO.inspect(GenServer.call(server, {:add, "pears", 2}), label: "add pears")
    IO.inspect(GenServer.call(server, :stock), label: "stock")

    # send/2 with a struct: Python answers with a struct of its own.
    send(server, %Order{item: "apples", qty: 3, from: self()})

    receive do
      %Receipt{} = receipt -> IO.inspect(receipt, label: "receipt")
    after
      5000 -> raise "no receipt"
    end

    # send/2 with a binary (1 MiB), answered with its size and CRC-32.
    blob = :binary.copy("erlnode ", 131_072)
    send(server, {:blob, self(), blob})

    receive do
      {:blob, size, crc} ->
        IO.inspect({size == byte_size(blob), crc == :erlang.crc32(blob)}, label: "blob checked")
    after
      5000 -> raise "no answer about the blob"
    end

    IO.inspect(GenServer.call(server, {:take, "apples", 10}), label: "take 10 apples")
    IO.inspect(GenServer.call(server, :stop), label: "stop")
  end
end

Client.main(System.argv())
