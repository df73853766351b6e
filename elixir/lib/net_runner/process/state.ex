defmodule NetRunner.Process.State do
  @moduledoc "The state of a `NetRunner.Process` GenServer."

  alias NetRunner.Process.{Operations, Pipe, Stats}

  defstruct [
    :control,
    :os_pid,
    :stdin,
    :stdout,
    :stderr,
    :stderr_mode,
    :owner_ref,
    :exit_status,
    pty: false,
    stdin_closing: false,
    caller_killed: false,
    control_open: false,
    stderr_buffer: [],
    stderr_buffered: 0,
    stderr_eof: false,
    stderr_dropped: 0,
    timed_out: false,
    waiters: [],
    operations: Operations.new(),
    stats: Stats.new()
  ]

  @type t :: %__MODULE__{
          control: reference() | nil,
          os_pid: integer | nil,
          stdin: Pipe.t(),
          stdout: Pipe.t(),
          stderr: Pipe.t(),
          stderr_mode: :consume | :redirect | :disabled,
          owner_ref: reference() | nil,
          exit_status: non_neg_integer | nil,
          pty: boolean,
          stdin_closing: boolean,
          caller_killed: boolean,
          control_open: boolean,
          stderr_buffer: iodata,
          stderr_buffered: non_neg_integer,
          stderr_eof: boolean,
          stderr_dropped: non_neg_integer,
          timed_out: boolean,
          waiters: [GenServer.from()],
          operations: Operations.t(),
          stats: Stats.t()
        }
end
