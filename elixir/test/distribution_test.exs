defmodule NetRunner.DistributionTest do
  # Two nodes on this machine with OTP's :peer (needs epmd, started here if
  # it is not running).
  use ExUnit.Case, async: false
  import NetRunner.TestHelpers

  @moduletag :slow

  setup_all do
    unless Node.alive?() do
      # Started here only if none runs, and then stopped again at the end:
      # the suite leaves no process of its own behind.
      {_, running} = System.cmd("epmd", ["-names"], stderr_to_stdout: true)
      started_epmd = running != 0 and match?({_, 0}, System.cmd("epmd", ["-daemon"]))

      {:ok, _} =
        :net_kernel.start([:"netrunner_test_#{System.unique_integer([:positive])}", :shortnames])

      on_exit(fn ->
        :net_kernel.stop()

        if started_epmd do
          System.cmd("epmd", ["-kill"], stderr_to_stdout: true)
        end
      end)
    end

    :ok
  end

  defp start_peer do
    {:ok, peer, node} = :peer.start_link(%{name: :peer.random_name()})
    :ok = :erpc.call(node, :code, :add_paths, [:code.get_path()])
    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:net_runner])
    {peer, node}
  end

  test ":erpc.call(node, NetRunner, :run, ...) runs there" do
    {peer, node} = start_peer()
    assert :erpc.call(node, NetRunner, :run, [["sh", "-c", "echo $$"]]) |> elem(1) == 0
    assert :erpc.call(node, NetRunner, :run, [["cat"], [input: "remote"]]) == {"remote", 0}
    :peer.stop(peer)
  end

  test "a Process whose :owner is on another node dies when that node goes down" do
    {peer, node} = start_peer()
    m = marker()
    owner = Node.spawn(node, Process, :sleep, [:infinity])
    {:ok, p} = NetRunner.Process.start("sleep", ["60"], env: marker_env(m), owner: owner)
    ref = Process.monitor(p)
    eventually(fn -> marked_pids(m) != [] end)
    :peer.stop(peer)
    assert_receive {:DOWN, ^ref, :process, ^p, _}, 10_000
    eventually(fn -> marked_pids(m) == [] end)
  end
end
