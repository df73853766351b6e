defmodule NetRunner.OwnershipTest do
  # A second BEAM runs NetRunner and is SIGKILLed: every child tree it
  # started must die (its shepherds see their control sockets close).
  use ExUnit.Case, async: true
  import NetRunner.TestHelpers

  @moduletag :slow

  test "SIGKILL of the whole BEAM kills every child tree" do
    m = marker()
    on_exit(fn -> kill_marked(m) end)
    ebin = :code.lib_dir(:net_runner, :ebin) |> to_string()

    script = """
    {:ok, _} = Application.ensure_all_started(:net_runner)
    env = [{"NETRUNNER_TEST_MARKER", "#{m}"}]
    {:ok, p1} = NetRunner.Process.start("sh", ["-c", "sleep 60 & sleep 60; wait"], env: env)
    {:ok, p2} = NetRunner.Process.start("sleep", ["60"], env: env)
    spawn(fn -> NetRunner.stream!(["yes"], env: env) |> Stream.run() end)
    IO.puts("ready " <> List.to_string(:os.getpid()))
    Process.sleep(:infinity)
    """

    elixir = System.find_executable("elixir")

    port =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        args: ["-pa", ebin, "-e", script]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> System.cmd("kill", ["-9", "#{os_pid}"], stderr_to_stdout: true) end)
    beam_pid = wait_ready(port)
    eventually(fn -> length(marked_pids(m)) >= 5 end, 10_000)

    System.cmd("kill", ["-9", beam_pid])
    assert_receive {^port, {:exit_status, _}}, 10_000
    # The shepherds see end of file, SIGTERM their trees, reap and exit.
    eventually(fn -> marked_pids(m) == [] end, 10_000)
  end

  defp wait_ready(port, acc \\ "") do
    receive do
      {^port, {:data, data}} ->
        acc = acc <> data

        case Regex.run(~r/ready (\d+)/, acc) do
          [_, pid] -> pid
          nil -> wait_ready(port, acc)
        end
    after
      30_000 -> flunk("second BEAM did not start: #{acc}")
    end
  end
end
