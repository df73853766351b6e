defmodule NetRunner.Process.Stats do
  @moduledoc """
  I/O statistics of one OS process, plus what its shepherd reported: CPU
  time (`user_time_us`, `system_time_us`), peak resident set size
  (`max_rss_kib`) and, when the program could not be executed, the errno
  atom in `exec_error` (`:enoent`, `:eacces`, …).

  Once it exited, `end_reason` says how it ended: `:exited`, `:signalled`,
  `:timeout` (the `:timeout` of `NetRunner.run/2` fired), `:killed`
  (`NetRunner.Process.kill/2`), `:owner_gone`, or `:oom_killed` (the OOM
  killer, at `:cgroup_memory_max`).

  With a cgroup (`:cgroup_path` or a cgroup limit) `cgroup` holds its
  figures, read before it was removed; each is an integer, or `nil` where
  the host does not provide it (memory figures need the memory controller
  on the cgroup, i.e. a `:cgroup_memory_max` on hybrid hosts):
  `memory_peak_bytes`, `oom_kills`, `cpu_usage_us`,
  `cpu_throttled_periods`, `cpu_throttled_us`, `pids_peak`.
  """

  defstruct bytes_in: 0,
            bytes_out: 0,
            bytes_err: 0,
            read_count: 0,
            write_count: 0,
            started_at: nil,
            duration_ms: nil,
            exit_status: nil,
            user_time_us: nil,
            system_time_us: nil,
            max_rss_kib: nil,
            exec_error: nil,
            end_reason: nil,
            cgroup: nil

  @type t :: %__MODULE__{
          bytes_in: non_neg_integer,
          bytes_out: non_neg_integer,
          bytes_err: non_neg_integer,
          read_count: non_neg_integer,
          write_count: non_neg_integer,
          started_at: integer | nil,
          duration_ms: non_neg_integer | nil,
          exit_status: non_neg_integer | nil,
          user_time_us: non_neg_integer | nil,
          system_time_us: non_neg_integer | nil,
          max_rss_kib: non_neg_integer | nil,
          exec_error: atom | nil,
          end_reason: :exited | :signalled | :timeout | :killed | :owner_gone | :oom_killed | nil,
          cgroup: cgroup | nil
        }

  @typedoc "The cgroup's figures (see the module doc)."
  @type cgroup :: %{
          memory_peak_bytes: non_neg_integer | nil,
          oom_kills: non_neg_integer | nil,
          cpu_usage_us: non_neg_integer | nil,
          cpu_throttled_periods: non_neg_integer | nil,
          cpu_throttled_us: non_neg_integer | nil,
          pids_peak: non_neg_integer | nil
        }

  @doc "Fresh stats, started now (monotonic milliseconds)."
  @spec new() :: t
  def new, do: %__MODULE__{started_at: System.monotonic_time(:millisecond)}

  @doc "Counts `bytes` read from stdout (`bytes_out`, `read_count`)."
  @spec record_read(t, non_neg_integer) :: t
  def record_read(%__MODULE__{} = s, bytes),
    do: %{s | bytes_out: s.bytes_out + bytes, read_count: s.read_count + 1}

  @doc "Counts `bytes` read from stderr (`bytes_err`, `read_count`)."
  @spec record_read_stderr(t, non_neg_integer) :: t
  def record_read_stderr(%__MODULE__{} = s, bytes),
    do: %{s | bytes_err: s.bytes_err + bytes, read_count: s.read_count + 1}

  @doc "Counts `bytes` written to stdin (`bytes_in`, `write_count`)."
  @spec record_write(t, non_neg_integer) :: t
  def record_write(%__MODULE__{} = s, bytes),
    do: %{s | bytes_in: s.bytes_in + bytes, write_count: s.write_count + 1}

  @doc "Sets `exit_status` and `duration_ms`."
  @spec finalize(t, non_neg_integer) :: t
  def finalize(%__MODULE__{} = s, exit_status) do
    now = System.monotonic_time(:millisecond)
    %{s | exit_status: exit_status, duration_ms: now - (s.started_at || now)}
  end
end
