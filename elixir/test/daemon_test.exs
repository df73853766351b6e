defmodule NetRunner.DaemonTest do
  use ExUnit.Case, async: true
  import NetRunner.TestHelpers
  alias NetRunner.Daemon

  test "runs, drains output to on_output, write/2, os_pid/1, alive?/1" do
    parent = self()

    {:ok, d} =
      Daemon.start_link(
        cmd: "sh",
        args: ["-c", "echo started; echo warn >&2; while read l; do echo got:$l; done"],
        on_output: fn chunk -> send(parent, {:out, chunk}) end
      )

    assert Daemon.alive?(d)
    assert Daemon.os_pid(d) > 0
    assert Daemon.write(d, "x\n") == :ok
    assert collect_until("got:x") =~ "started"
    GenServer.stop(d)
  end

  defp collect_until(needle, acc \\ "") do
    receive do
      {:out, chunk} ->
        acc = acc <> chunk
        if acc =~ needle, do: acc, else: collect_until(needle, acc)
    after
      5_000 -> flunk("no #{needle} in #{inspect(acc)}")
    end
  end

  test "by default the Daemon stays up after its program exits, alive? false" do
    {:ok, d} = Daemon.start_link(cmd: "true")
    eventually(fn -> not Daemon.alive?(d) end)
    assert Process.alive?(d)
    GenServer.stop(d)
  end

  test "on_exit: :stop stops with the exit status; a supervisor restarts it" do
    Process.flag(:trap_exit, true)
    {:ok, d} = Daemon.start_link(cmd: "sh", args: ["-c", "exit 3"], on_exit: :stop)
    assert_receive {:EXIT, ^d, {:exit_status, 3}}, 5_000
    {:ok, d} = Daemon.start_link(cmd: "true", on_exit: :stop)
    assert_receive {:EXIT, ^d, :normal}, 5_000

    counter = :counters.new(1, [])

    spec =
      Daemon.child_spec(
        cmd: "sh",
        args: ["-c", "sleep 0.05; exit 1"],
        on_exit: :stop,
        on_output: fn _ -> :ok end,
        id: :flaky
      )

    spec =
      Map.update!(spec, :start, fn {m, f, [opts]} ->
        {__MODULE__, :counted_start, [counter, m, f, opts]}
      end)

    {:ok, sup} = Supervisor.start_link([spec], strategy: :one_for_one, max_restarts: 100)
    eventually(fn -> :counters.get(counter, 1) >= 3 end)
    Supervisor.stop(sup)
  end

  def counted_start(counter, m, f, opts) do
    :counters.add(counter, 1, 1)
    apply(m, f, [opts])
  end

  test ":ready makes start_link wait for the output" do
    t0 = System.monotonic_time(:millisecond)

    {:ok, d} =
      Daemon.start_link(
        cmd: "sh",
        args: ["-c", "sleep 0.3; echo 'server Ready to accept'; sleep 60"],
        ready: ~r/Ready to accept/,
        ready_timeout: 5_000
      )

    assert System.monotonic_time(:millisecond) - t0 >= 250
    assert Daemon.alive?(d)
    GenServer.stop(d)

    Process.flag(:trap_exit, true)

    assert {:error, {:not_ready, :timeout, _}} =
             Daemon.start_link(cmd: "sleep", args: ["60"], ready: ~r/never/, ready_timeout: 100)
  end

  test "stopping or killing the Daemon kills the tree" do
    m = marker()

    {:ok, d} =
      Daemon.start_link(
        cmd: "sh",
        args: ["-c", "sleep 60 & sleep 60"],
        process_opts: [env: marker_env(m)]
      )

    eventually(fn -> length(marked_pids(m)) >= 3 end)
    GenServer.stop(d)
    eventually(fn -> marked_pids(m) == [] end)

    m = marker()
    Process.flag(:trap_exit, true)

    {:ok, d} =
      Daemon.start_link(
        cmd: "sleep",
        args: ["60"],
        process_opts: [env: marker_env(m), kill_timeout: 100]
      )

    eventually(fn -> marked_pids(m) != [] end)
    Process.exit(d, :kill)
    eventually(fn -> marked_pids(m) == [] end)
  end

  test "graceful stop: SIGTERM first, SIGKILL after kill_timeout" do
    m = marker()

    {:ok, d} =
      Daemon.start_link(
        cmd: "sh",
        args: ["-c", "trap 'echo term; exit 0' TERM; echo up; while :; do sleep 0.05; done"],
        process_opts: [env: marker_env(m), kill_timeout: 2_000],
        ready: ~r/up/
      )

    GenServer.stop(d)
    eventually(fn -> marked_pids(m) == [] end)
  end
end
