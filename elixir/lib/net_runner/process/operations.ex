defmodule NetRunner.Process.Operations do
  @moduledoc """
  The queue of parked operations of a `NetRunner.Process`: reads and writes
  that would have blocked wait here, in arrival order per stream, and are
  retried when the `enif_select` message says the pipe is ready.
  """

  defstruct stdout: :queue.new(), stderr: :queue.new(), stdin: :queue.new()

  @typedoc "A parked read `{from, max}` or write `{from, remaining_binary}`."
  @type op :: {GenServer.from(), pos_integer | binary}
  @type t :: %__MODULE__{
          stdout: :queue.queue(op),
          stderr: :queue.queue(op),
          stdin: :queue.queue(op)
        }

  @doc "An empty queue."
  @spec new() :: t
  def new, do: %__MODULE__{}

  @doc "Parks `op` at the end of `stream`'s queue."
  @spec park(t, :stdout | :stderr | :stdin, op) :: t
  def park(ops, stream, op), do: Map.update!(ops, stream, &:queue.in(op, &1))

  @doc "Puts `op` back at the head of `stream`'s queue (still blocked)."
  @spec requeue(t, :stdout | :stderr | :stdin, op) :: t
  def requeue(ops, stream, op), do: Map.update!(ops, stream, &:queue.in_r(op, &1))

  @doc "Takes the oldest operation of `stream`."
  @spec pop(t, :stdout | :stderr | :stdin) :: {op, t} | :empty
  def pop(ops, stream) do
    case :queue.out(Map.fetch!(ops, stream)) do
      {{:value, op}, rest} -> {op, Map.put(ops, stream, rest)}
      {:empty, _} -> :empty
    end
  end

  @doc "Whether operations wait on `stream`."
  @spec pending?(t, :stdout | :stderr | :stdin) :: boolean
  def pending?(ops, stream), do: not :queue.is_empty(Map.fetch!(ops, stream))

  @doc "Removes and returns every operation of `stream`."
  @spec take_all(t, :stdout | :stderr | :stdin) :: {[op], t}
  def take_all(ops, stream),
    do: {:queue.to_list(Map.fetch!(ops, stream)), Map.put(ops, stream, :queue.new())}
end
