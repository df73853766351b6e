defmodule NetRunner.Process.Nif do
  @moduledoc """
  The NIF functions (Rust, `native/net_runner_nif`).

  Commands are started through the Rust library's own launch path
  (`net_runner::raw::spawn`: validation, pre-started shepherd, spawn
  handshake). Descriptors are resources driven with `enif_select`: a call
  that would block returns `{:error, :eagain}` after arming the poller for
  the calling process, which later receives
  `{:select, resource, :undefined, :ready_input | :ready_output}`.
  """
  @on_load :load_nifs

  @doc false
  def load_nifs do
    path = :filename.join(:code.priv_dir(:net_runner), ~c"net_runner_nif")
    :erlang.load_nif(path, 0)
  end

  @typedoc "A descriptor resource (a pipe end or the control socket)."
  @type fd :: reference()

  @doc """
  Starts a command: `{:ok, ref}` at once, then the message
  `{:net_runner_spawned, ref, result}` where `result` is
  `{:ok, control, os_pid, stdin | nil, stdout, stderr | nil}` (in PTY
  mode stdout is the master and stdin a duplicate of it),
  `{:error, {:exec, errno, stage}}`, `{:error, {:invalid, message}}`,
  `{:error, {:invalid_cgroup_path, message}}`,
  `{:error, {:invalid_option, message}}` or `{:error, {:cgroup, message}}`.

  The spec's last tuple is `{pty, cgroup_path, cgroup_base, memory_max,
  pids_max, cpu_max, timeout_ms}` (`pty`: `{rows, cols, raw}`; `cpu_max`:
  `{quota_us, period_us}`; each may be `nil`); the shepherd enforces the
  timeout.
  """
  @spec nif_spawn(
          {binary, [binary], [{binary, binary | nil}],
           {boolean, binary | nil, atom, non_neg_integer, boolean},
           {{pos_integer, pos_integer, boolean} | nil, binary | nil, binary | nil,
            pos_integer | nil, pos_integer | nil, {pos_integer, pos_integer} | nil,
            pos_integer | nil}}
        ) :: {:ok, reference()}
  def nif_spawn(_spec), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Wraps a descriptor number owned by the caller (`:read` or `:write`)."
  @spec nif_create_fd(non_neg_integer, :read | :write) :: {:ok, fd}
  def nif_create_fd(_fd, _mode), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Reads up to `max` bytes: `{:ok, binary}`, `:eof`, `{:error, :eagain}` (selected) or `{:error, reason}`."
  @spec nif_read(fd, pos_integer) :: {:ok, binary} | :eof | {:error, atom}
  def nif_read(_fd, _max), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Writes what the pipe takes: `{:ok, n}` (selected for output when `n` is short) or `{:error, reason}`."
  @spec nif_write(fd, binary) :: {:ok, non_neg_integer} | {:error, atom}
  def nif_write(_fd, _data), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Closes a descriptor; idempotent. Closing the control socket terminates the tree."
  @spec nif_close(fd) :: :ok
  def nif_close(_fd), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Asks the shepherd to send signal `number` to the child's process group."
  @spec nif_kill(fd, pos_integer) :: :ok | {:error, atom}
  def nif_kill(_control, _signal), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Graceful stop through the shepherd: SIGTERM, kill timeout, SIGKILL."
  @spec nif_shutdown(fd) :: :ok | {:error, atom}
  def nif_shutdown(_control), do: :erlang.nif_error(:nif_not_loaded)

  @doc """
  Sets the terminal size through the PTY master: `:ok`, `{:error,
  :not_a_pty}`, `{:error, :invalid_size}` or `{:error, reason}`.
  """
  @spec nif_set_window_size(fd, non_neg_integer, non_neg_integer) :: :ok | {:error, term}
  def nif_set_window_size(_master, _rows, _cols), do: :erlang.nif_error(:nif_not_loaded)

  @doc """
  The bytes that end a PTY program's input, to write before closing its
  stdin: the terminal's VEOF character, once at the start of a line, twice
  after a partial line. `{:ok, binary}` or `{:error, reason}`.
  """
  @spec nif_pty_eof(fd) :: {:ok, binary} | {:error, atom}
  def nif_pty_eof(_stdin), do: :erlang.nif_error(:nif_not_loaded)

  @doc """
  Reads the control socket: `{messages, :open | :eof}`; with `:open` the
  caller is selected for input. Messages: `{:exited, code, user_us, sys_us,
  rss_kib, stopped}`, `{:signaled, signal, user_us, sys_us, rss_kib,
  stopped}` (`stopped`: `nil` or why the shepherd had started the stop
  sequence: `:deadline`, `:requested`, `:owner_gone`, `:signalled`),
  `{:cgroup_stats, map}` (right before the exit), `{:shepherd_error, text}`.
  """
  @spec nif_control_read(fd) :: {[tuple], :open | :eof}
  def nif_control_read(_control), do: :erlang.nif_error(:nif_not_loaded)

  @doc "Whether an OS process with this pid exists."
  @spec nif_is_os_pid_alive(integer) :: boolean
  def nif_is_os_pid_alive(_os_pid), do: :erlang.nif_error(:nif_not_loaded)

  @doc "A duplicate of the descriptor, as a new resource."
  @spec nif_dup_fd(fd) :: {:ok, fd} | {:error, atom}
  def nif_dup_fd(_fd), do: :erlang.nif_error(:nif_not_loaded)

  @doc "The platform's number for a signal atom (`:sigterm`)."
  @spec nif_signal_number(atom) :: {:ok, pos_integer} | {:error, :unknown_signal}
  def nif_signal_number(_name), do: :erlang.nif_error(:nif_not_loaded)
end
