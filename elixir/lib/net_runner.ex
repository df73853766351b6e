defmodule NetRunner do
  @moduledoc """
  Safe execution of OS processes from Elixir: every command runs under its
  own shepherd, which kills the whole process tree when its owner goes away
  (even when the BEAM is SIGKILLed); output is read on demand
  (backpressure); input of any size never deadlocks.

      iex> NetRunner.run(["echo", "hello"])
      {"hello\\n", 0}

      iex> NetRunner.run(["sh", "-c", "exit 3"])
      {"", 3}

      iex> NetRunner.run(["cat"], input: "piped")
      {"piped", 0}

      iex> NetRunner.stream!(["seq", "3"]) |> Enum.join()
      "1\\n2\\n3\\n"

  See `NetRunner.Process` for interactive use and `NetRunner.Daemon` for
  supervised long-running programs.
  """

  alias NetRunner.Process, as: Proc
  alias NetRunner.Process.Exec

  @run_keys [:input, :timeout, :max_output_size]

  @typedoc "A command: `[executable | args]` or a `%NetRunner.Command{}`."
  @type cmd :: [String.t()] | NetRunner.Command.t()

  @typedoc "Why `run/2` or `stream/2` failed."
  @type error ::
          :timeout
          | {:max_output_exceeded, binary}
          | {:invalid_cmd, String.t()}
          | {:invalid_args, String.t()}
          | {:invalid_cgroup_path, String.t()}
          | {:invalid_option, String.t()}
          | {:cgroup, String.t()}

  @doc """
  Runs a command to completion: `{stdout, exit_status}` (a non-zero status
  is not an error; 128+N when killed by signal N), or `{:error, reason}`.

  Options: `:input` (binary, iodata, or any enumerable of binaries),
  `:timeout` (ms; enforced by the program's shepherd, so it holds even if
  the BEAM is stalled: at the deadline the tree gets SIGTERM, then SIGKILL
  after `:kill_timeout`, and `{:error, :timeout}` is returned, however the
  program then exits),
  `:max_output_size` (bytes; `{:error, {:max_output_exceeded, partial}}`
  with exactly that many bytes), and every option of
  `NetRunner.Process.start/3`.
  """
  @spec run(cmd, keyword) :: {binary, non_neg_integer} | {:error, error}
  def run(cmd, opts \\ []) do
    with {:ok, exe, args, opts} <- normalize(cmd, opts),
         {run_opts, proc_opts} = Keyword.split(opts, @run_keys),
         proc_opts = with_timeout(proc_opts, run_opts[:timeout]),
         {:ok, pid} <- Proc.start(exe, args, Keyword.put_new(proc_opts, :owner, self())) do
      feeder = feed(pid, run_opts[:input])

      try do
        collect(pid, run_opts[:max_output_size], [], 0)
      after
        stop_feeder(feeder)
        stop(pid)
      end
    end
  end

  defp collect(pid, max, acc, size) do
    case Proc.read(pid) do
      {:ok, data} ->
        size = size + byte_size(data)

        if max != nil and size > max do
          all = IO.iodata_to_binary([acc | [data]])
          {:error, {:max_output_exceeded, binary_part(all, 0, max)}}
        else
          collect(pid, max, [acc | [data]], size)
        end

      {:error, :timeout} ->
        {:error, :timeout}

      _eof ->
        case Proc.await_exit(pid) do
          {:ok, status} ->
            # End of file may come before the exit report says the
            # shepherd's deadline fired.
            if Proc.stats(pid).end_reason == :timeout,
              do: {:error, :timeout},
              else: {IO.iodata_to_binary(acc), status}

          other ->
            other
        end
    end
  end

  @doc """
  A lazy stream of stdout chunks; raises `ArgumentError` if the command is
  invalid. The OS process starts when the stream is enumerated and dies
  when the consumer halts early or crashes. Input (`:input`) is written by
  a separate process, so nothing deadlocks. Same options as `run/2`.
  """
  @spec stream!(cmd, keyword) :: Enumerable.t()
  def stream!(cmd, opts \\ []) do
    case stream(cmd, opts) do
      {:ok, stream} -> stream
      {:error, reason} -> raise ArgumentError, "cannot start #{inspect(cmd)}: #{inspect(reason)}"
    end
  end

  @doc "As `stream!/2`: `{:ok, enumerable}` or `{:error, reason}` (as `run/2`)."
  @spec stream(cmd, keyword) :: {:ok, Enumerable.t()} | {:error, error}
  def stream(cmd, opts \\ []) do
    with {:ok, exe, args, opts} <- normalize(cmd, opts),
         {run_opts, proc_opts} = Keyword.split(opts, @run_keys),
         proc_opts = with_timeout(proc_opts, run_opts[:timeout]),
         :ok <- Exec.validate(exe, args, proc_opts) do
      {:ok, NetRunner.Stream.new(exe, args, proc_opts, run_opts)}
    end
  end

  defp with_timeout(proc_opts, t) when t in [nil, :infinity], do: proc_opts
  defp with_timeout(proc_opts, ms), do: Keyword.put(proc_opts, :run_timeout, ms)

  @doc false
  @spec normalize(term, keyword) :: {:ok, term, term, keyword} | {:error, error}
  def normalize(%NetRunner.Command{} = cmd, opts) do
    {exe, args, opts} = NetRunner.Command.to_cmd_args_opts(cmd, opts)
    {:ok, exe, args, opts}
  end

  def normalize([exe | args], opts), do: {:ok, exe, args, opts}
  def normalize([], _opts), do: {:error, {:invalid_cmd, "command must not be empty"}}

  def normalize(other, _opts),
    do:
      {:error,
       {:invalid_cmd,
        "expected [executable | args] or %NetRunner.Command{}, got: #{inspect(other)}"}}

  # Feeds `input` from a separate, unlinked process; stdin is closed at
  # the end (at once without input).
  @doc false
  @spec feed(pid, term) :: pid | nil
  def feed(pid, nil) do
    Proc.close_stdin(pid)
    nil
  end

  def feed(pid, input) do
    spawn(fn ->
      try do
        input
        |> chunks()
        |> Enum.reduce_while(:ok, fn chunk, :ok ->
          case Proc.write(pid, chunk) do
            :ok -> {:cont, :ok}
            _closed -> {:halt, :closed}
          end
        end)

        Proc.close_stdin(pid)
      catch
        :exit, _ -> :ok
      end
    end)
  end

  defp chunks(input) when is_binary(input), do: [input]

  defp chunks(input) when is_list(input) do
    [IO.iodata_to_binary(input)]
  rescue
    ArgumentError -> input
  end

  defp chunks(input), do: input

  @doc false
  @spec stop_feeder(pid | nil) :: :ok
  def stop_feeder(nil), do: :ok

  def stop_feeder(pid) do
    Process.exit(pid, :kill)
    :ok
  end

  @doc false
  @spec stop(pid) :: :ok
  def stop(pid) do
    GenServer.stop(pid, :normal, :infinity)
  catch
    :exit, _ -> :ok
  end
end
