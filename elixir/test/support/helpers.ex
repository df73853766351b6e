defmodule NetRunner.TestHelpers do
  @moduledoc "Helpers for the suite: marked children, waiting, fd counts."

  @doc "A unique marker; children started with `marker_env/1` carry it."
  @spec marker() :: String.t()
  def marker, do: "nrt-#{System.unique_integer([:positive])}-#{:os.getpid()}"

  @doc "The `:env` option that marks children with `m`."
  @spec marker_env(String.t()) :: [{String.t(), String.t()}]
  def marker_env(m), do: [{"NETRUNNER_TEST_MARKER", m}]

  @doc "OS pids of the live processes whose environment carries marker `m`."
  @spec marked_pids(String.t()) :: [integer]
  def marked_pids(m) do
    needle = "NETRUNNER_TEST_MARKER=#{m}"

    Path.wildcard("/proc/[0-9]*/environ")
    |> Enum.flat_map(fn path ->
      pid = path |> Path.dirname() |> Path.basename() |> String.to_integer()

      with {:ok, env} <- File.read(path),
           true <- env |> :binary.split(<<0>>, [:global]) |> Enum.member?(needle),
           false <- zombie?(pid) do
        [pid]
      else
        _ -> []
      end
    end)
  end

  defp zombie?(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} -> stat |> String.split(") ") |> List.last() |> String.starts_with?("Z")
      _ -> true
    end
  end

  @doc "Kills (SIGKILL, by pid) whatever still carries marker `m`: test cleanup."
  @spec kill_marked(String.t()) :: :ok
  def kill_marked(m) do
    for pid <- marked_pids(m), do: System.cmd("kill", ["-9", "#{pid}"], stderr_to_stdout: true)
    :ok
  end

  @doc "Polls `fun` until it returns truthy, up to `timeout` ms."
  @spec eventually((() -> term), non_neg_integer) :: term
  def eventually(fun, timeout \\ 5_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline)
  end

  defp poll(fun, deadline) do
    case fun.() do
      result when result not in [nil, false] ->
        result

      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          raise "condition not met in time"
        else
          # A marked sleep: polling interval while waiting for the OS.
          Process.sleep(20)
          poll(fun, deadline)
        end
    end
  end

  @doc "Number of descriptors open in this BEAM."
  @spec open_fds() :: non_neg_integer
  def open_fds, do: length(File.ls!("/proc/self/fd"))

  @doc "Number of live child processes of this BEAM (shepherds)."
  @spec child_processes() :: non_neg_integer
  def child_processes do
    me = "#{:os.getpid()}"

    Path.wildcard("/proc/[0-9]*/stat")
    |> Enum.count(fn path ->
      case File.read(path) do
        {:ok, stat} ->
          [_state, ppid | _] = stat |> String.split(") ") |> List.last() |> String.split(" ")
          ppid == me

        _ ->
          false
      end
    end)
  end
end
