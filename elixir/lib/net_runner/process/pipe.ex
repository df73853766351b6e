defmodule NetRunner.Process.Pipe do
  @moduledoc """
  One pipe end of an OS process, wrapping a NIF descriptor resource.
  Reads and writes never block: `{:error, :eagain}` means the caller was
  selected and gets a `{:select, fd, _, _}` message when it may retry.
  """
  alias NetRunner.Process.Nif

  defstruct [:name, :fd, status: :open]

  @type t :: %__MODULE__{
          name: :stdin | :stdout | :stderr,
          fd: Nif.fd() | nil,
          status: :open | :closed
        }

  @doc "A pipe named `name` around `fd` (`nil`: not a pipe, already closed)."
  @spec new(:stdin | :stdout | :stderr, Nif.fd() | nil) :: t
  def new(name, nil), do: %__MODULE__{name: name, fd: nil, status: :closed}
  def new(name, fd), do: %__MODULE__{name: name, fd: fd}

  @doc "Reads up to `max` bytes."
  @spec read(t, pos_integer) :: {:ok, binary} | :eof | {:error, atom}
  def read(%__MODULE__{status: :closed}, _max), do: {:error, :closed}
  def read(%__MODULE__{fd: fd}, max), do: Nif.nif_read(fd, max)

  @doc "Writes what the pipe takes now: `{:ok, bytes_written}`."
  @spec write(t, binary) :: {:ok, non_neg_integer} | {:error, atom}
  def write(%__MODULE__{status: :closed}, _data), do: {:error, :closed}
  def write(%__MODULE__{fd: fd}, data), do: Nif.nif_write(fd, data)

  @doc "Closes the pipe; idempotent."
  @spec close(t) :: t
  def close(%__MODULE__{status: :closed} = pipe), do: pipe

  def close(%__MODULE__{fd: fd} = pipe) do
    :ok = Nif.nif_close(fd)
    %{pipe | status: :closed}
  end

  @doc "Whether `fd` is this pipe's resource."
  @spec owns?(t, term) :: boolean
  def owns?(%__MODULE__{fd: fd}, other), do: fd != nil and fd == other
end
