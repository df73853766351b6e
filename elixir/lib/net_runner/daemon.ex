defmodule NetRunner.Daemon do
  @moduledoc """
  A long-running program in a supervision tree.

      children = [
        {NetRunner.Daemon,
         cmd: "redis-server", args: ["--port", "7000"], name: MyApp.Redis,
         on_output: :log, ready: ~r/Ready to accept/, ready_timeout: 10_000,
         on_exit: :stop}
      ]

  Options: `:cmd`, `:args`, `:name`, `:on_output` (`:discard` default,
  `:log`, or a 1-arity function called with each chunk), `:process_opts`
  (options of `NetRunner.Process.start/3`; stderr is redirected into
  stdout unless set there). stdout and stderr are always drained, so the
  program never blocks on them.

  Stopping the Daemon (normal stop, crash, `Process.exit(d, :kill)`) kills
  the OS process tree: SIGTERM, the Process's `:kill_timeout`, SIGKILL.

  When the program exits by itself, by default the Daemon stays up and
  `alive?/1` returns false (as the original). Beyond the original:

    * `on_exit: :stop` — the Daemon stops with reason `:normal` (status 0)
      or `{:exit_status, n}`, so its supervisor restarts it by its own
      strategy;
    * `ready: regex` with `ready_timeout: ms` (default 5000) — `start_link`
      returns only once the output matched (`{:error, {:not_ready, output}}`
      on timeout or exit before).
  """
  use GenServer
  require Logger

  alias NetRunner.Process, as: Proc

  @doc "A child spec; `:id` defaults to the `:name` or the module."
  @spec child_spec(keyword) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{
      id: Keyword.get(opts, :id, Keyword.get(opts, :name, __MODULE__)),
      start: {__MODULE__, :start_link, [opts]},
      restart: Keyword.get(opts, :restart, :permanent),
      shutdown: Keyword.get(opts, :shutdown, 10_000)
    }
  end

  @doc "Starts the program under a Daemon linked to the caller."
  @spec start_link(keyword) :: GenServer.on_start()
  def start_link(opts) do
    gen_opts = if name = opts[:name], do: [name: name], else: []
    GenServer.start_link(__MODULE__, opts, gen_opts)
  end

  @doc "The program's OS pid."
  @spec os_pid(GenServer.server()) :: non_neg_integer
  def os_pid(daemon), do: GenServer.call(daemon, :os_pid)

  @doc "Whether the program is still running."
  @spec alive?(GenServer.server()) :: boolean
  def alive?(daemon), do: GenServer.call(daemon, :alive?)

  @doc "Writes to the program's stdin."
  @spec write(GenServer.server(), iodata) :: :ok | {:error, term}
  def write(daemon, data) do
    GenServer.call(daemon, :process) |> Proc.write(data)
  end

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    cmd = Keyword.fetch!(opts, :cmd)
    args = Keyword.get(opts, :args, [])
    proc_opts = Keyword.put_new(Keyword.get(opts, :process_opts, []), :stderr, :redirect)

    case Proc.start_link(cmd, args, proc_opts) do
      {:ok, proc} ->
        daemon = self()
        reader = spawn_link(fn -> read_loop(proc, daemon) end)
        spawn_link(fn -> send(daemon, {:program_exited, Proc.await_exit(proc)}) end)
        if proc_opts[:stderr] == :consume, do: spawn_link(fn -> stderr_loop(proc, daemon) end)

        state = %{
          proc: proc,
          reader: reader,
          on_output: Keyword.get(opts, :on_output, :discard),
          on_exit: Keyword.get(opts, :on_exit, :stay),
          exit_status: nil
        }

        case opts[:ready] do
          nil -> {:ok, state}
          regex -> await_ready(state, regex, Keyword.get(opts, :ready_timeout, 5_000))
        end

      {:error, reason} ->
        {:stop, reason}
    end
  end

  defp await_ready(state, regex, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    wait_ready(state, regex, "", deadline)
  end

  defp wait_ready(state, regex, seen, deadline) do
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:output, data} ->
        output(state.on_output, data)
        # Keep a window: a match may straddle chunks.
        seen = seen <> data
        seen = binary_part(seen, max(byte_size(seen) - 65_536, 0), min(byte_size(seen), 65_536))

        if Regex.match?(regex, seen),
          do: {:ok, state},
          else: wait_ready(state, regex, seen, deadline)

      {:program_exited, {:ok, status}} ->
        {:stop, {:not_ready, {:exit_status, status}, seen}}
    after
      left -> {:stop, {:not_ready, :timeout, seen}}
    end
  end

  @impl true
  def handle_call(:os_pid, _from, state), do: {:reply, Proc.os_pid(state.proc), state}

  def handle_call(:alive?, _from, state),
    do: {:reply, state.exit_status == nil and Proc.alive?(state.proc), state}

  def handle_call(:process, _from, state), do: {:reply, state.proc, state}

  @impl true
  def handle_info({:output, data}, state) do
    output(state.on_output, data)
    {:noreply, state}
  end

  def handle_info({:program_exited, {:ok, status}}, state) do
    state = %{state | exit_status: status}

    case state.on_exit do
      :stop when status == 0 -> {:stop, :normal, state}
      :stop -> {:stop, {:exit_status, status}, state}
      _ -> {:noreply, state}
    end
  end

  def handle_info({:EXIT, proc, reason}, %{proc: proc} = state), do: {:stop, reason, state}
  def handle_info({:EXIT, _other, _reason}, state), do: {:noreply, state}
  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    # The Process closes its control socket: the shepherd sends SIGTERM,
    # waits the kill_timeout, then SIGKILL.
    NetRunner.stop(state.proc)
  end

  defp read_loop(proc, daemon) do
    case Proc.read(proc) do
      {:ok, data} ->
        send(daemon, {:output, data})
        read_loop(proc, daemon)

      _ ->
        :ok
    end
  end

  defp stderr_loop(proc, daemon) do
    case Proc.read_stderr(proc) do
      {:ok, data} ->
        send(daemon, {:output, data})
        stderr_loop(proc, daemon)

      _ ->
        :ok
    end
  end

  defp output(:discard, _data), do: :ok
  defp output(:log, data), do: Logger.info(data)
  defp output(fun, data) when is_function(fun, 1), do: fun.(data)
end
