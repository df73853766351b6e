defmodule NetRunner.ProcessTest do
  use ExUnit.Case, async: true
  import NetRunner.TestHelpers
  alias NetRunner.Process, as: P

  test "read, write, close_stdin, await_exit, os_pid, alive?" do
    {:ok, p} = P.start("cat")
    assert is_integer(P.os_pid(p)) and P.os_pid(p) > 0
    assert P.alive?(p)
    assert P.write(p, ["a", ?b]) == :ok
    assert P.read(p) == {:ok, "ab"}
    assert P.close_stdin(p) == :ok
    assert P.close_stdin(p) == :ok
    assert P.write(p, "late") == {:error, :closed}
    assert P.read(p) == :eof
    assert P.await_exit(p) == {:ok, 0}
    refute P.alive?(p)
    assert P.await_exit(p) == {:ok, 0}
  end

  test "read with max_bytes" do
    {:ok, p} = P.start("printf", ["abcdef"])
    P.await_exit(p)
    assert P.read(p, 2) == {:ok, "ab"}
    assert P.read(p, 100) == {:ok, "cdef"}
    assert P.read(p) == :eof
  end

  test "reading after exit gives the buffered data then :eof" do
    {:ok, p} = P.start("sh", ["-c", "echo one; echo two >&2"])
    assert P.await_exit(p) == {:ok, 0}
    assert P.read(p) == {:ok, "one\n"}
    assert P.read(p) == :eof
    assert P.read_stderr(p) == {:ok, "two\n"}
    assert P.read_stderr(p) == :eof
  end

  test "concurrent await_exit callers all get the status" do
    {:ok, p} = P.start("sh", ["-c", "read x; exit 5"])
    tasks = for _ <- 1..10, do: Task.async(fn -> P.await_exit(p) end)
    P.write(p, "go\n")
    assert Enum.map(tasks, &Task.await/1) == List.duplicate({:ok, 5}, 10)
  end

  test "await_exit with a timeout" do
    {:ok, p} = P.start("sleep", ["10"])
    assert P.await_exit(p, 50) == {:error, :timeout}
    P.kill(p, :sigkill)
    assert P.await_exit(p, 5_000) == {:ok, 137}
  end

  test "a read while another task writes (large data both ways)" do
    {:ok, p} = P.start("cat")
    data = :crypto.strong_rand_bytes(8 * 1024 * 1024)

    writer =
      Task.async(fn ->
        :ok = P.write(p, data)
        P.close_stdin(p)
      end)

    out = read_all(p, [])
    Task.await(writer, 30_000)
    assert out == data
    assert P.await_exit(p) == {:ok, 0}
    stats = P.stats(p)
    assert stats.bytes_in == byte_size(data)
    assert stats.bytes_out == byte_size(data)
    assert stats.write_count == 1
    assert stats.read_count > 0
  end

  defp read_all(p, acc) do
    case P.read(p) do
      {:ok, d} -> read_all(p, [acc | d])
      :eof -> IO.iodata_to_binary(acc)
    end
  end

  test "concurrent close and read never crash" do
    for _ <- 1..20 do
      {:ok, p} = P.start("cat")
      reader = Task.async(fn -> P.read(p) end)
      closer = Task.async(fn -> P.close_stdin(p) end)
      assert Task.await(closer) == :ok
      assert Task.await(reader) in [:eof, {:error, :closed}]
      assert P.await_exit(p) == {:ok, 0}
    end
  end

  test "kill sends a signal to the whole group; unknown signals are refused" do
    m = marker()
    {:ok, p} = P.start("sh", ["-c", "sleep 60 & sleep 60; wait"], env: marker_env(m))
    eventually(fn -> length(marked_pids(m)) >= 3 end)
    assert P.kill(p, :bogus) == {:error, :unknown_signal}
    assert P.kill(p, "sigterm") == {:error, :unknown_signal}
    assert P.kill(p, :sigterm) == :ok
    assert P.await_exit(p) == {:ok, 143}
    eventually(fn -> marked_pids(m) == [] end)
    assert P.kill(p, :sigterm) == :ok
  end

  test "kill with a number" do
    {:ok, p} = P.start("sleep", ["60"])
    assert P.kill(p, 9) == :ok
    assert P.await_exit(p) == {:ok, 137}
  end

  test "stats include the shepherd's figures" do
    {:ok, p} = P.start("sh", ["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
    assert P.await_exit(p) == {:ok, 0}
    s = P.stats(p)
    assert %NetRunner.Process.Stats{exit_status: 0, exec_error: nil} = s
    assert is_integer(s.duration_ms) and is_integer(s.started_at)
    assert s.user_time_us + s.system_time_us > 0
    assert s.max_rss_kib > 0
  end

  test "Stats functions" do
    alias NetRunner.Process.Stats

    s =
      Stats.new() |> Stats.record_read(3) |> Stats.record_read_stderr(2) |> Stats.record_write(5)

    assert %{bytes_out: 3, bytes_err: 2, bytes_in: 5, read_count: 2, write_count: 1} = s
    s = Stats.finalize(s, 1)
    assert s.exit_status == 1 and is_integer(s.duration_ms)
  end

  test "stderr modes" do
    {:ok, p} = P.start("sh", ["-c", "echo e >&2; echo o"], stderr: :redirect)
    P.await_exit(p)
    assert read_all(p, []) == "e\no\n"
    assert P.read_stderr(p) == :eof

    {:ok, p} = P.start("sh", ["-c", "echo e >&2; echo o"], stderr: :disabled)
    P.await_exit(p)
    assert P.read(p) == {:ok, "o\n"}
    assert P.read_stderr(p) == :eof
  end

  test "a chatty stderr never blocks the program" do
    {:ok, p} = P.start("sh", ["-c", "head -c 5000000 /dev/zero >&2; echo done"])
    assert P.await_exit(p, 10_000) == {:ok, 0}
    assert P.read(p) == {:ok, "done\n"}
    assert P.stats(p).bytes_err == 5_000_000
  end

  test "write after the program closed stdin is an error, not a crash" do
    {:ok, p} = P.start("true")
    P.await_exit(p)
    big = :binary.copy("x", 1_000_000)
    assert {:error, _} = P.write(p, big)
    assert Process.alive?(p)
  end

  test "set_window_size outside PTY mode" do
    {:ok, p} = P.start("true")
    assert P.set_window_size(p, 24, 80) == {:error, :not_a_pty}
  end

  test ":name registers the GenServer" do
    {:ok, _} = P.start("sleep", ["10"], name: :netrunner_named_test)
    assert is_integer(P.os_pid(:netrunner_named_test))
    GenServer.stop(:netrunner_named_test)
  end

  test "validation errors" do
    assert {:error, {:invalid_cmd, _}} = P.start(nil)
    assert {:error, {:invalid_cmd, _}} = P.start("")
    assert {:error, {:invalid_args, _}} = P.start("echo", "notalist")
    assert {:error, {:invalid_cgroup_path, _}} = P.start("true", [], cgroup_path: "../x")
    assert {:error, {:invalid_option, _}} = P.start("true", [], pty: {0, 80})
    assert {:error, {:invalid_option, _}} = P.start("true", [], cgroup_memory_max: -1)
  end

  describe "ownership" do
    test "Process.exit(pid, :kill) kills the tree (through the Watcher and the shepherd)" do
      m = marker()

      {:ok, p} =
        P.start("sh", ["-c", "sleep 60 & sleep 60; wait"], env: marker_env(m), kill_timeout: 100)

      eventually(fn -> length(marked_pids(m)) >= 3 end)
      Process.exit(p, :kill)
      eventually(fn -> marked_pids(m) == [] end)
    end

    test "GenServer.stop kills the tree" do
      m = marker()
      {:ok, p} = P.start("sleep", ["60"], env: marker_env(m))
      eventually(fn -> marked_pids(m) != [] end)
      GenServer.stop(p)
      eventually(fn -> marked_pids(m) == [] end)
    end

    test "the :owner's death kills the process and stops the GenServer" do
      m = marker()
      owner = spawn(fn -> Process.sleep(:infinity) end)
      {:ok, p} = P.start("sleep", ["60"], env: marker_env(m), owner: owner)
      ref = Process.monitor(p)
      eventually(fn -> marked_pids(m) != [] end)
      Process.exit(owner, :kill)
      assert_receive {:DOWN, ^ref, :process, ^p, _}, 5_000
      eventually(fn -> marked_pids(m) == [] end)
    end

    test "SIGTERM-ignoring trees get SIGKILL after kill_timeout" do
      m = marker()

      {:ok, p} =
        P.start("sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
          env: marker_env(m),
          kill_timeout: 200
        )

      assert P.read(p) == {:ok, "ready\n"}
      GenServer.stop(p)
      eventually(fn -> marked_pids(m) == [] end, 5_000)
    end
  end
end
