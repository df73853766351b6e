defmodule NetRunner.Signal do
  @moduledoc """
  Signal names and numbers.

      iex> NetRunner.Signal.resolve(:sigterm)
      {:ok, 15}
      iex> NetRunner.Signal.resolve(9)
      {:ok, 9}
      iex> NetRunner.Signal.resolve(:nope)
      {:error, :unknown_signal}
  """

  @doc """
  The signal number for a lower-case POSIX name (`:sigterm`, `:sigkill`, …,
  resolved by the platform) or an integer in 1..31.
  """
  @spec resolve(term) :: {:ok, pos_integer} | {:error, :unknown_signal}
  def resolve(n) when is_integer(n) and n >= 1 and n <= 31, do: {:ok, n}

  def resolve(name) when is_atom(name) and name not in [nil, true, false] do
    NetRunner.Process.Nif.nif_signal_number(name)
  end

  def resolve(_), do: {:error, :unknown_signal}

  @doc "Like `resolve/1`, but returns the number or raises `ArgumentError`."
  @spec resolve!(term) :: pos_integer
  def resolve!(signal) do
    case resolve(signal) do
      {:ok, n} -> n
      {:error, :unknown_signal} -> raise ArgumentError, "unknown signal: #{inspect(signal)}"
    end
  end
end
