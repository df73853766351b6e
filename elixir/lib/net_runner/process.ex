defmodule NetRunner.Process do
  @moduledoc """
  A GenServer owning one OS process, started under its own shepherd.

      iex> {:ok, p} = NetRunner.Process.start("cat")
      iex> NetRunner.Process.write(p, "hello")
      :ok
      iex> NetRunner.Process.close_stdin(p)
      :ok
      iex> NetRunner.Process.read(p)
      {:ok, "hello"}
      iex> NetRunner.Process.read(p)
      :eof
      iex> NetRunner.Process.await_exit(p)
      {:ok, 0}

  I/O never blocks the GenServer: a read or write that would block is
  parked in `NetRunner.Process.Operations` and retried when the BEAM's
  poller (`enif_select`) reports the pipe ready, so any number of callers
  can read, write and await concurrently. Nothing reads stdout until asked
  (backpressure: a full pipe stops the program); stderr in `:consume` mode
  is drained continuously into a buffer (the last 1 MiB unread is kept)
  so it never blocks the program.

  The OS process tree dies with the GenServer, however it ends (normal
  stop, crash, `Process.exit(pid, :kill)`: through `NetRunner.Watcher`),
  with the `:owner`, and with the whole BEAM (the shepherd sees its control
  socket close): SIGTERM, `:kill_timeout`, SIGKILL.

  ## Options

    * `:stderr` — `:consume` (default; read with `read_stderr/2`),
      `:redirect` (into stdout), `:disabled`
    * `:kill_timeout` — ms between SIGTERM and SIGKILL (default 5000)
    * `:owner` — a pid (local or on another node) whose death kills the
      process and stops the GenServer
    * `:name` — a GenServer name
    * `:env` — a map or list of `{name, value}`; a `nil` value removes the
      variable
    * `:env_clear` — start from an empty environment
    * `:cd` — the working directory
    * `:pty` — run on a pseudo-terminal (see "PTY mode" below): `true`
      (cooked, 24×80), `{rows, cols}`, or `[rows: r, cols: c, raw: true]`
    * `:cgroup_path` — a path relative to the base (the BEAM's own cgroup,
      or `:cgroup_base`) where the shepherd creates the program's cgroup,
      placing it there before exec and removing it afterwards. Absolute
      paths, `..`, `.` or empty components, NUL, newline and over-long
      paths are `{:error, {:invalid_cgroup_path, msg}}` before anything
      runs (`msg` says "relative" for an absolute path, `'..'` for a
      traversal).
    * `:cgroup_base` — the base, a cgroup path as in `/proc/self/cgroup`
      (e.g. `"/netrunner"`); default `NETRUNNER_CGROUP_BASE`, else the
      BEAM's own cgroup
    * `:cgroup_memory_max` (bytes), `:cgroup_pids_max` (processes),
      `:cgroup_cpu_max` (`{quota_us, period_us}`, e.g. `{50_000, 100_000}`
      for half a CPU) — limits, in cgroup2 where the controller is
      available, else in the cgroup v1 hierarchy of that controller. A
      limit alone makes a cgroup `netrunner-<pid>-<n>`. A limit no
      hierarchy can apply, or a cgroup that cannot be created (no write
      access), is `{:error, {:cgroup, msg}}` (nothing ran); a bad value
      `{:error, {:invalid_option, msg}}`.

  `NetRunner.run/2` and `NetRunner.stream/2` also take `:timeout`, which
  the shepherd enforces (SIGTERM, `:kill_timeout`, SIGKILL at the
  deadline, even if the BEAM is stalled).

  A program that cannot be executed still starts: `await_exit/2` gives
  127 (not found) or 126 (not executable) and `stats/1` has the errno atom
  in `exec_error`.

  ## PTY mode

  With `pty: true` the program gets a terminal as stdin, stdout and stderr
  (a new session with it as controlling terminal: `isatty` is true, `stty
  size` answers, `"\x03"` written is SIGINT). `read/2` returns what the
  terminal shows: stdout and stderr together, `"\n"` as `"\r\n"`, and the
  echo of what was written (cooked mode). `:stderr` does not apply
  (`read_stderr/2` gives `:eof`). Nothing the program writes is lost, even
  when it exits at once and is read late. `close_stdin/1` sends the
  terminal's end-of-file character (^D; twice after a partial line, so
  `wc -c` after `"abc"` answers 3; once in raw mode). `set_window_size/3`
  resizes (SIGWINCH to the program).

      {:ok, p} = NetRunner.Process.start("wc", ["-c"], pty: true)
      :ok = NetRunner.Process.write(p, "abc")
      :ok = NetRunner.Process.close_stdin(p)
      # reads give "abc" (the echo), then "3\r\n", then :eof

  ## cgroups

      {:ok, p} = NetRunner.Process.start("make", [],
        cgroup_path: "builds/job-42", cgroup_memory_max: 2_000_000_000)
      {:ok, 137} = NetRunner.Process.await_exit(p)
      %{end_reason: :oom_killed, cgroup: %{oom_kills: 1, memory_peak_bytes: _}} =
        NetRunner.Process.stats(p)
  """
  use GenServer

  alias NetRunner.Process.{Exec, Nif, Operations, Pipe, State, Stats}

  @default_max 65_535
  @stderr_keep 1_048_576

  @typedoc "The result of a read."
  @type read_result :: {:ok, binary} | :eof | {:error, term}

  @doc "Starts `cmd` with `args` (see the module doc for the options)."
  @spec start(binary, [binary], keyword) :: GenServer.on_start() | {:error, term}
  def start(cmd, args \\ [], opts \\ []), do: do_start(:start, cmd, args, opts)

  @doc "As `start/3`, linked to the caller."
  @spec start_link(binary, [binary], keyword) :: GenServer.on_start() | {:error, term}
  def start_link(cmd, args \\ [], opts \\ []), do: do_start(:start_link, cmd, args, opts)

  defp do_start(fun, cmd, args, opts) do
    case Exec.validate(cmd, args, opts) do
      :ok ->
        gen_opts = if name = opts[:name], do: [name: name], else: []
        apply(GenServer, fun, [__MODULE__, {cmd, args, opts}, gen_opts])

      error ->
        error
    end
  end

  @doc """
  Reads up to `max_bytes` of stdout: `{:ok, binary}`, `:eof`, or
  `{:error, reason}`. Waits (without blocking the GenServer) for data.
  """
  @spec read(GenServer.server(), pos_integer) :: read_result
  def read(pid, max_bytes \\ @default_max), do: GenServer.call(pid, {:read, max_bytes}, :infinity)

  @doc "As `read/2`, for stderr (`:eof` unless `stderr: :consume`)."
  @spec read_stderr(GenServer.server(), pos_integer) :: read_result
  def read_stderr(pid, max_bytes \\ @default_max),
    do: GenServer.call(pid, {:read_stderr, max_bytes}, :infinity)

  @doc """
  Writes `data` to stdin: `:ok` once every byte is in the pipe (a full
  pipe parks the caller, not the GenServer); `{:error, :closed}` after
  `close_stdin/1`; `{:error, :epipe}` when the program closed its stdin.
  """
  @spec write(GenServer.server(), iodata) :: :ok | {:error, term}
  def write(pid, data), do: GenServer.call(pid, {:write, IO.iodata_to_binary(data)}, :infinity)

  @doc """
  Closes stdin (the program reads end of file); idempotent. In PTY mode the
  terminal's VEOF character is written first (see the module doc).
  """
  @spec close_stdin(GenServer.server()) :: :ok
  def close_stdin(pid), do: GenServer.call(pid, :close_stdin, :infinity)

  @doc """
  Sends `signal` (an atom such as `:sigterm`, or a number) to the whole
  process group: `:ok`, or `{:error, :unknown_signal}`.
  """
  @spec kill(GenServer.server(), atom | pos_integer) :: :ok | {:error, :unknown_signal}
  def kill(pid, signal \\ :sigterm) do
    case NetRunner.Signal.resolve(signal) do
      {:ok, n} -> GenServer.call(pid, {:kill, n}, :infinity)
      error -> error
    end
  end

  @doc """
  Waits for the program's exit: `{:ok, exit_status}` (the code, or 128+N
  for signal N). Any number of callers; works after the exit too.
  `{:error, :timeout}` if `timeout` (ms) passes first.
  """
  @spec await_exit(GenServer.server(), timeout) :: {:ok, non_neg_integer} | {:error, :timeout}
  def await_exit(pid, timeout \\ :infinity) do
    GenServer.call(pid, :await_exit, timeout)
  catch
    :exit, {:timeout, _} -> {:error, :timeout}
  end

  @doc "The program's OS pid (also its process group id); 0 if it never started."
  @spec os_pid(GenServer.server()) :: non_neg_integer
  def os_pid(pid), do: GenServer.call(pid, :os_pid)

  @doc "Whether the program is still running."
  @spec alive?(GenServer.server()) :: boolean
  def alive?(pid), do: GenServer.call(pid, :alive?)

  @doc "The statistics so far (`NetRunner.Process.Stats`)."
  @spec stats(GenServer.server()) :: Stats.t()
  def stats(pid), do: GenServer.call(pid, :stats)

  @doc """
  Sets the terminal size (PTY mode): `:ok`, and the program gets SIGWINCH.
  `{:error, :not_a_pty}` for a process started without `:pty`,
  `{:error, :invalid_size}` unless rows and cols are integers from 1 to
  10000.
  """
  @spec set_window_size(GenServer.server(), pos_integer, pos_integer) :: :ok | {:error, term}
  def set_window_size(pid, rows, cols) do
    if Exec.window_size?(rows) and Exec.window_size?(cols),
      do: GenServer.call(pid, {:set_window_size, rows, cols}),
      else: {:error, :invalid_size}
  end

  # ---------------------------------------------------------------------------

  @impl true
  def init({cmd, args, opts}) do
    Process.flag(:trap_exit, true)

    owner_ref =
      case opts[:owner] do
        nil -> nil
        owner -> Process.monitor(owner)
      end

    stats = Stats.new()
    pty = Exec.pty_spec(Keyword.get(opts, :pty, false)) != nil
    mode = if pty, do: :redirect, else: Keyword.get(opts, :stderr, :consume)

    case Exec.spawn(cmd, args, opts) do
      {:ok, sp} ->
        fds = Enum.reject([sp.control, sp.stdin, sp.stdout, sp.stderr], &is_nil/1)
        {:ok, _} = NetRunner.Watcher.watch(self(), fds)

        state = %State{
          control: sp.control,
          control_open: true,
          os_pid: sp.os_pid,
          stdin: Pipe.new(:stdin, sp.stdin),
          stdout: Pipe.new(:stdout, sp.stdout),
          stderr: Pipe.new(:stderr, sp.stderr),
          stderr_mode: mode,
          stderr_eof: sp.stderr == nil,
          owner_ref: owner_ref,
          pty: pty,
          stats: stats
        }

        {:ok, state |> poll_control() |> drain_stderr()}

      {:error, {:exec, errno, _stage}} ->
        # As a shell: 127 not found, 126 found but not executable.
        status = if errno == :enoent, do: 127, else: 126

        {:ok,
         %State{
           os_pid: 0,
           stdin: Pipe.new(:stdin, nil),
           stdout: Pipe.new(:stdout, nil),
           stderr: Pipe.new(:stderr, nil),
           stderr_mode: mode,
           stderr_eof: true,
           exit_status: status,
           owner_ref: owner_ref,
           stats: %{Stats.finalize(stats, status) | exec_error: errno}
         }}

      {:error, {:invalid, msg}} ->
        {:stop, {:invalid_args, msg}}

      {:error, {tag, _msg} = reason}
      when tag in [:invalid_cgroup_path, :invalid_option, :cgroup] ->
        {:stop, reason}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def handle_call({:read, max}, from, state) do
    cond do
      state.timed_out ->
        {:reply, {:error, :timeout}, state}

      Operations.pending?(state.operations, :stdout) ->
        {:noreply, park(state, :stdout, {from, max})}

      true ->
        {:noreply, read_stdout(state, {from, max})}
    end
  end

  def handle_call({:read_stderr, max}, from, state) do
    cond do
      state.stderr_mode != :consume ->
        {:reply, :eof, state}

      state.stderr_buffered > 0 ->
        {data, state} = take_stderr(state, max)
        {:reply, {:ok, data}, state}

      state.stderr_eof ->
        {:reply, :eof, state}

      state.timed_out ->
        {:reply, {:error, :timeout}, state}

      true ->
        {:noreply, park(state, :stderr, {from, max})}
    end
  end

  def handle_call({:write, data}, from, state) do
    cond do
      state.stdin.status == :closed or state.stdin_closing ->
        {:reply, {:error, :closed}, state}

      Operations.pending?(state.operations, :stdin) ->
        {:noreply, park(state, :stdin, {from, {data, byte_size(data)}})}

      true ->
        {:noreply, write_stdin(state, {from, {data, byte_size(data)}})}
    end
  end

  def handle_call(:close_stdin, _from, state), do: {:reply, :ok, close_stdin_now(state)}

  def handle_call({:kill, signal}, _from, state) do
    if state.control_open and state.exit_status == nil do
      _ = Nif.nif_kill(state.control, signal)
      {:reply, :ok, %{state | caller_killed: true}}
    else
      {:reply, :ok, state}
    end
  end

  def handle_call(:await_exit, from, state) do
    case state.exit_status do
      nil -> {:noreply, %{state | waiters: [from | state.waiters]}}
      status -> {:reply, {:ok, status}, state}
    end
  end

  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}
  def handle_call(:alive?, _from, state), do: {:reply, state.exit_status == nil, state}
  def handle_call(:stats, _from, state), do: {:reply, state.stats, state}

  def handle_call({:set_window_size, rows, cols}, _from, state) do
    if state.pty and state.stdout.fd != nil do
      # Through the master: the shepherd keeps no copy of it.
      {:reply, Nif.nif_set_window_size(state.stdout.fd, rows, cols), state}
    else
      {:reply, {:error, :not_a_pty}, state}
    end
  end

  @impl true
  def handle_info({:select, fd, _ref, :ready_input}, state) do
    cond do
      state.control == fd -> {:noreply, poll_control(state)}
      Pipe.owns?(state.stdout, fd) -> {:noreply, resume_reads(state)}
      Pipe.owns?(state.stderr, fd) -> {:noreply, drain_stderr(state)}
      true -> {:noreply, state}
    end
  end

  def handle_info({:select, fd, _ref, :ready_output}, state) do
    if Pipe.owns?(state.stdin, fd), do: {:noreply, resume_writes(state)}, else: {:noreply, state}
  end

  def handle_info(:drain_stderr, state), do: {:noreply, drain_stderr(state)}

  def handle_info({:DOWN, ref, :process, _, _}, %{owner_ref: ref} = state),
    do: {:stop, :normal, state}

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    # Closing the control socket makes the shepherd terminate the tree
    # (SIGTERM, kill_timeout, SIGKILL) and exit.
    if state.control_open, do: Nif.nif_close(state.control)
    Enum.each([state.stdin, state.stdout, state.stderr], &Pipe.close/1)
    :ok
  end

  # --- stdout ---------------------------------------------------------------

  defp park(state, stream, op),
    do: %{state | operations: Operations.park(state.operations, stream, op)}

  # Tries one read for `op`: replies, or parks it at the head (selected).
  defp read_stdout(state, {from, max} = op) do
    case Pipe.read(state.stdout, max) do
      {:ok, data} ->
        GenServer.reply(from, {:ok, data})
        %{state | stats: Stats.record_read(state.stats, byte_size(data))}

      {:error, :eagain} ->
        %{state | operations: Operations.requeue(state.operations, :stdout, op)}

      other ->
        GenServer.reply(from, other)
        state
    end
  end

  defp resume_reads(state) do
    case Operations.pop(state.operations, :stdout) do
      :empty ->
        state

      {op, ops} ->
        state = read_stdout(%{state | operations: ops}, op)

        if Operations.pending?(state.operations, :stdout) and
             not parked_head?(state.operations, :stdout, op),
           do: resume_reads(state),
           else: state
    end
  end

  defp parked_head?(ops, stream, op) do
    case Operations.pop(ops, stream) do
      {^op, _} -> true
      _ -> false
    end
  end

  # --- stdin ----------------------------------------------------------------

  # `from` is `:eof` for the VEOF bytes of a PTY's `close_stdin`: no one
  # to answer, and the writer is closed once they are written (or failed).
  defp write_stdin(state, {from, {data, total}}) do
    case Pipe.write(state.stdin, data) do
      {:ok, n} when n == byte_size(data) and from == :eof ->
        %{state | stdin: Pipe.close(state.stdin)}

      {:ok, n} when n == byte_size(data) ->
        GenServer.reply(from, :ok)
        %{state | stats: Stats.record_write(state.stats, total)}

      {:ok, n} ->
        rest = binary_part(data, n, byte_size(data) - n)
        %{state | operations: Operations.requeue(state.operations, :stdin, {from, {rest, total}})}

      {:error, _reason} when from == :eof ->
        %{state | stdin: Pipe.close(state.stdin)}

      {:error, reason} ->
        GenServer.reply(from, {:error, reason})
        state
    end
  end

  defp resume_writes(state) do
    case Operations.pop(state.operations, :stdin) do
      :empty ->
        state

      {{from, _} = op, ops} ->
        state = write_stdin(%{state | operations: ops}, op)

        case Operations.pop(state.operations, :stdin) do
          {{^from, _}, _} -> state
          _ -> resume_writes(state)
        end
    end
  end

  defp close_stdin_now(%{stdin_closing: true} = state), do: state

  defp close_stdin_now(state) do
    {writers, ops} = Operations.take_all(state.operations, :stdin)
    Enum.each(writers, fn {from, _} -> GenServer.reply(from, {:error, :closed}) end)
    state = %{state | operations: ops}

    case state.pty and state.stdin.status == :open and Nif.nif_pty_eof(state.stdin.fd) do
      {:ok, eof} when eof != "" ->
        # A terminal has no end of file of its own: its VEOF character goes
        # through the line discipline, then the writer is closed.
        write_stdin(%{state | stdin_closing: true}, {:eof, {eof, 0}})

      _ ->
        %{state | stdin: Pipe.close(state.stdin)}
    end
  end

  # --- stderr ---------------------------------------------------------------

  defp drain_stderr(%{stderr_mode: :consume, stderr_eof: false} = state),
    do: drain_stderr(state, 16)

  defp drain_stderr(state), do: state

  defp drain_stderr(state, 0) do
    send(self(), :drain_stderr)
    serve_stderr(state)
  end

  defp drain_stderr(state, n) do
    case Pipe.read(state.stderr, @default_max) do
      {:ok, data} ->
        state
        |> buffer_stderr(data)
        |> drain_stderr(n - 1)

      {:error, :eagain} ->
        serve_stderr(state)

      _eof_or_error ->
        serve_stderr(%{state | stderr_eof: true})
    end
  end

  defp buffer_stderr(state, data) do
    size = state.stderr_buffered + byte_size(data)
    stats = Stats.record_read_stderr(state.stats, byte_size(data))

    if size > @stderr_keep do
      all = IO.iodata_to_binary([state.stderr_buffer, data])
      drop = size - @stderr_keep

      %{
        state
        | stderr_buffer: [binary_part(all, drop, @stderr_keep)],
          stderr_buffered: @stderr_keep,
          stderr_dropped: state.stderr_dropped + drop,
          stats: stats
      }
    else
      %{state | stderr_buffer: [state.stderr_buffer, data], stderr_buffered: size, stats: stats}
    end
  end

  defp take_stderr(state, max) do
    all = IO.iodata_to_binary(state.stderr_buffer)

    if byte_size(all) <= max do
      {all, %{state | stderr_buffer: [], stderr_buffered: 0}}
    else
      rest = binary_part(all, max, byte_size(all) - max)

      {binary_part(all, 0, max),
       %{state | stderr_buffer: [rest], stderr_buffered: byte_size(rest)}}
    end
  end

  defp serve_stderr(state) do
    cond do
      not Operations.pending?(state.operations, :stderr) ->
        state

      state.stderr_buffered > 0 ->
        {{from, max}, ops} = Operations.pop(state.operations, :stderr)
        {data, state} = take_stderr(%{state | operations: ops}, max)
        GenServer.reply(from, {:ok, data})
        serve_stderr(state)

      state.stderr_eof ->
        {readers, ops} = Operations.take_all(state.operations, :stderr)
        Enum.each(readers, fn {from, _} -> GenServer.reply(from, :eof) end)
        %{state | operations: ops}

      true ->
        state
    end
  end

  # --- control channel ------------------------------------------------------

  defp poll_control(%{control_open: false} = state), do: state

  defp poll_control(state) do
    {messages, channel} = Nif.nif_control_read(state.control)
    state = Enum.reduce(messages, state, &control_message/2)

    case channel do
      :open ->
        state

      :eof ->
        # The shepherd is gone (after reporting the exit, or killed):
        # closing our end lets it be reaped.
        Nif.nif_close(state.control)
        state = %{state | control_open: false}
        # Lost without a report: the child died by its PDEATHSIG (SIGKILL).
        if state.exit_status == nil, do: exited(state, 128 + 9, nil), else: state
    end
  end

  defp control_message({:exited, code, user, sys, rss, stopped}, state),
    do: exited(state, code, {user, sys, rss}, end_reason(state, stopped, nil))

  defp control_message({:signaled, signal, user, sys, rss, stopped}, state),
    do: exited(state, 128 + signal, {user, sys, rss}, end_reason(state, stopped, signal))

  defp control_message({:cgroup_stats, figures}, state),
    do: %{state | stats: %{state.stats | cgroup: figures}}

  defp control_message({:shepherd_error, _text}, state), do: state

  # As the Rust library's `End`: what the shepherd says stopped it first,
  # then the OOM killer (SIGKILL with an OOM kill in its cgroup), then who
  # sent the signal.
  defp end_reason(_state, :deadline, _signal), do: :timeout
  defp end_reason(_state, :requested, _signal), do: :killed

  defp end_reason(_state, stopped, _signal) when stopped in [:owner_gone, :signalled],
    do: :owner_gone

  defp end_reason(_state, nil, nil), do: :exited

  defp end_reason(state, nil, signal) do
    cond do
      signal == 9 and (state.stats.cgroup[:oom_kills] || 0) > 0 -> :oom_killed
      state.caller_killed -> :killed
      true -> :signalled
    end
  end

  defp exited(state, status, usage, reason \\ :signalled) do
    stats = %{Stats.finalize(state.stats, status) | end_reason: reason}

    stats =
      case usage do
        {user, sys, rss} -> %{stats | user_time_us: user, system_time_us: sys, max_rss_kib: rss}
        nil -> stats
      end

    Enum.each(state.waiters, &GenServer.reply(&1, {:ok, status}))
    state = %{state | exit_status: status, stats: stats, waiters: []}
    if reason == :timeout, do: timed_out(state), else: state
  end

  # The shepherd's deadline fired: whatever is still read is answered
  # `{:error, :timeout}` (`NetRunner.run/2` returns that).
  defp timed_out(state) do
    {readers, ops} = Operations.take_all(state.operations, :stdout)
    {err_readers, ops} = Operations.take_all(ops, :stderr)

    Enum.each(readers ++ err_readers, fn {from, _} ->
      GenServer.reply(from, {:error, :timeout})
    end)

    %{state | timed_out: true, operations: ops}
  end
end
