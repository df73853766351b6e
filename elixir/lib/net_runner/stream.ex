defmodule NetRunner.Stream do
  @moduledoc """
  The `Stream.resource/3` behind `NetRunner.stream!/2`: the OS process
  starts on enumeration with the consumer as `:owner`, input is written by
  a separate process (no deadlock), stdout is read only when the consumer
  asks for more (backpressure: a consumer that stops pulling stops the
  program once its pipe is full), and halting (or crashing) kills the tree.
  The stream ends at end of file, whatever the exit status.
  """

  alias NetRunner.Process, as: Proc

  defmodule AbnormalExit do
    @moduledoc "A program's abnormal exit (kept from the original API; not raised by streams)."
    defexception [:exit_status, :stderr]

    @impl true
    def message(%{exit_status: status}), do: "process exited with status #{status}"
  end

  @doc "The stream for `exe` with `args`; see `NetRunner.stream!/2`."
  @spec new(String.t(), [String.t()], keyword, keyword) :: Enumerable.t()
  def new(exe, args, proc_opts, run_opts) do
    Stream.resource(
      fn ->
        case Proc.start(exe, args, Keyword.put_new(proc_opts, :owner, self())) do
          {:ok, pid} -> {pid, NetRunner.feed(pid, run_opts[:input])}
          {:error, reason} -> raise ArgumentError, "cannot start #{exe}: #{inspect(reason)}"
        end
      end,
      fn {pid, _feeder} = acc ->
        case Proc.read(pid) do
          {:ok, data} -> {[data], acc}
          _eof_or_error -> {:halt, acc}
        end
      end,
      fn {pid, feeder} ->
        NetRunner.stop_feeder(feeder)
        NetRunner.stop(pid)
      end
    )
  end
end
