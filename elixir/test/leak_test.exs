defmodule NetRunner.LeakTest do
  # Not async: it counts the BEAM's descriptors and child processes, which
  # tests running at the same time in other modules would change.
  use ExUnit.Case, async: false
  import NetRunner.TestHelpers

  describe "no leaks" do
    @tag :slow
    test "500 runs leave no process, fd or socket behind" do
      NetRunner.run(["true"])
      Process.sleep(200)
      fds = open_fds()
      children = child_processes()

      for _ <- 1..500 do
        {"x\n", 0} = NetRunner.run(["echo", "x"])
      end

      eventually(fn -> open_fds() <= fds and child_processes() <= children end, 10_000)
    end
  end
end
