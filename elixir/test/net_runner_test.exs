defmodule NetRunnerTest do
  use ExUnit.Case, async: true
  import NetRunner.TestHelpers

  doctest NetRunner
  doctest NetRunner.Process
  doctest NetRunner.Signal
  doctest NetRunner.Command

  describe "run/2" do
    test "returns stdout and the exit status" do
      assert NetRunner.run(["echo", "hi"]) == {"hi\n", 0}
      assert NetRunner.run(["sh", "-c", "echo out; exit 7"]) == {"out\n", 7}
    end

    test "stdout only; stderr is consumed separately" do
      assert NetRunner.run(["sh", "-c", "echo err >&2; echo out"]) == {"out\n", 0}
    end

    test "stderr: :redirect merges stderr into stdout" do
      assert NetRunner.run(["sh", "-c", "echo err >&2"], stderr: :redirect) == {"err\n", 0}
    end

    test "NUL bytes pass through untouched" do
      assert NetRunner.run(["printf", "a\\0b\\0"]) == {<<?a, 0, ?b, 0>>, 0}
      assert NetRunner.run(["cat"], input: <<0, 1, 0, 2>>) == {<<0, 1, 0, 2>>, 0}
    end

    test "fast-exiting programs lose no output, even with much stderr" do
      for _ <- 1..20 do
        assert {"done\n", 3} =
                 NetRunner.run(["sh", "-c", "head -c 300000 /dev/zero >&2; echo done; exit 3"])
      end
    end

    test "128+N when killed by signal N" do
      assert NetRunner.run(["sh", "-c", "kill -9 $$"]) == {"", 137}
      assert NetRunner.run(["sh", "-c", "kill -15 $$"]) == {"", 143}
      assert NetRunner.run(["sh", "-c", "kill -2 $$"]) == {"", 130}
    end

    test ":timeout kills the tree and returns {:error, :timeout}" do
      m = marker()
      t0 = System.monotonic_time(:millisecond)

      assert NetRunner.run(["sh", "-c", "sleep 30 & sleep 30"], timeout: 200, env: marker_env(m)) ==
               {:error, :timeout}

      assert System.monotonic_time(:millisecond) - t0 < 3_000
      eventually(fn -> marked_pids(m) == [] end)
    end

    test ":timeout is the shepherd's graceful stop: a TERM trap runs, {:error, :timeout} all the same" do
      m = marker()
      on_exit(fn -> kill_marked(m) end)
      file = Path.join(System.tmp_dir!(), "#{m}-trap")

      script =
        "trap 'echo bye > \"$F\"; echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done"

      t0 = System.monotonic_time(:millisecond)

      run =
        Task.async(fn ->
          NetRunner.run(["sh", "-c", script],
            timeout: 300,
            kill_timeout: 10_000,
            env: [{"F", file} | marker_env(m)]
          )
        end)

      assert Task.await(run, 8_000) == {:error, :timeout}
      # Well within the grace period: the program exited on SIGTERM.
      assert System.monotonic_time(:millisecond) - t0 < 5_000
      assert File.read!(file) == "bye\n"
      File.rm!(file)
      eventually(fn -> marked_pids(m) == [] end)
    end

    test ":timeout holds while the GenServer is stalled" do
      m = marker()
      on_exit(fn -> kill_marked(m) end)
      {:ok, p} = NetRunner.Process.start("sleep", ["30"], run_timeout: 200, env: marker_env(m))
      eventually(fn -> marked_pids(m) != [] end)
      :sys.suspend(p)
      eventually(fn -> marked_pids(m) == [] end, 3_000)
      :sys.resume(p)
      assert NetRunner.Process.await_exit(p, 5_000) == {:ok, 143}
      assert NetRunner.Process.stats(p).end_reason == :timeout
      assert NetRunner.Process.read(p) == {:error, :timeout}
    end

    test "a program that ends in time is not a timeout" do
      assert NetRunner.run(["echo", "quick"], timeout: 5_000) == {"quick\n", 0}
      assert NetRunner.run(["echo", "quick"], timeout: :infinity) == {"quick\n", 0}
      assert NetRunner.run(["sleep", "5"], timeout: 0) == {:error, :timeout}
      assert {:error, {:invalid_option, _}} = NetRunner.run(["true"], timeout: -1)
      assert {:error, {:invalid_option, _}} = NetRunner.run(["true"], timeout: 1.5)
    end

    test ":max_output_size returns exactly that many bytes" do
      assert {:error, {:max_output_exceeded, partial}} =
               NetRunner.run(["yes"], max_output_size: 100_001)

      assert byte_size(partial) == 100_001
      assert NetRunner.run(["echo", "ok"], max_output_size: 3) == {"ok\n", 0}
    end

    test "invalid commands and args" do
      assert {:error, {:invalid_cmd, _}} = NetRunner.run([""])
      assert {:error, {:invalid_cmd, _}} = NetRunner.run([])
      assert {:error, {:invalid_cmd, _}} = NetRunner.run(["ec\0ho"])
      assert {:error, {:invalid_cmd, _}} = NetRunner.run([:echo])
      assert {:error, {:invalid_args, _}} = NetRunner.run(["echo", 1])
      assert {:error, {:invalid_args, _}} = NetRunner.run(["echo", "a\0b"])
    end

    test "64 MiB through cat never deadlocks" do
      data = :binary.copy(<<"0123456789abcdef">>, 4 * 1024 * 1024)
      assert {out, 0} = NetRunner.run(["cat"], input: data)
      assert byte_size(out) == byte_size(data)
      assert out == data
    end

    test "enumerable and iodata input" do
      assert NetRunner.run(["cat"], input: Stream.map(1..3, &"#{&1},")) == {"1,2,3,", 0}
      assert NetRunner.run(["cat"], input: ["a", ["b", ?c]]) == {"abc", 0}
    end

    test ":env, :env_clear and :cd" do
      assert NetRunner.run(["sh", "-c", "echo $NR_X"], env: %{"NR_X" => "1"}) == {"1\n", 0}
      System.put_env("NR_TEST_REMOVED", "present")

      assert NetRunner.run(["sh", "-c", "echo ${NR_TEST_REMOVED:-gone}"],
               env: [{"NR_TEST_REMOVED", nil}]
             ) == {"gone\n", 0}

      assert {out, 0} = NetRunner.run(["/usr/bin/env"], env_clear: true, env: [{"ONLY", "me"}])
      assert out == "ONLY=me\n"
      assert NetRunner.run(["pwd"], cd: "/tmp") == {"/tmp\n", 0}
    end

    test "a %NetRunner.Command{} with override options" do
      cmd = NetRunner.Command.new("sh", ["-c", "echo $V"], env: [{"V", "a"}])
      assert NetRunner.run(cmd) == {"a\n", 0}
      assert NetRunner.run(cmd, env: [{"V", "b"}]) == {"b\n", 0}
    end

    test "a program that cannot be executed: 127 / 126" do
      assert NetRunner.run(["no-such-program-netrunner"]) == {"", 127}

      path =
        Path.join(System.tmp_dir!(), "netrunner-noexec-#{System.unique_integer([:positive])}")

      File.write!(path, "#!/bin/sh\necho hi\n")
      File.chmod!(path, 0o644)
      assert NetRunner.run([path]) == {"", 126}
      {:ok, p} = NetRunner.Process.start(path)
      assert NetRunner.Process.await_exit(p) == {:ok, 126}
      assert NetRunner.Process.stats(p).exec_error == :eacces
      {:ok, p} = NetRunner.Process.start("no-such-program-netrunner")
      assert NetRunner.Process.await_exit(p) == {:ok, 127}
      assert NetRunner.Process.stats(p).exec_error == :enoent
      File.rm!(path)
    end
  end

  describe "stream!/2 and stream/2" do
    test "chunks of stdout" do
      assert NetRunner.stream!(["seq", "1000"]) |> Enum.join() ==
               Enum.map_join(1..1000, &"#{&1}\n")
    end

    test "input is written by a separate process" do
      data = :binary.copy("x", 5_000_000)
      assert NetRunner.stream!(["cat"], input: data) |> Enum.join() == data
    end

    test "errors" do
      assert {:error, {:invalid_cmd, _}} = NetRunner.stream([""])
      assert {:ok, _} = NetRunner.stream(["true"])
      assert_raise ArgumentError, fn -> NetRunner.stream!(["echo", 1]) end
    end

    test "ends at EOF whatever the exit status" do
      assert NetRunner.stream!(["sh", "-c", "echo x; exit 4"]) |> Enum.to_list() == ["x\n"]
    end

    test "halting early kills the OS process" do
      m = marker()
      assert [_] = NetRunner.stream!(["yes"], env: marker_env(m)) |> Enum.take(1)
      eventually(fn -> marked_pids(m) == [] end)
    end

    test "a crashing consumer kills the OS process" do
      m = marker()

      {pid, ref} =
        spawn_monitor(fn ->
          NetRunner.stream!(["yes"], env: marker_env(m)) |> Enum.each(fn _ -> raise "boom" end)
        end)

      assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
      eventually(fn -> marked_pids(m) == [] end)
    end

    test "backpressure: a consumer that stops pulling stops the program" do
      m = marker()
      parent = self()

      consumer =
        spawn(fn ->
          NetRunner.stream!(["sh", "-c", "head -c 100000000 /dev/zero | tee /dev/null"],
            env: marker_env(m)
          )
          |> Enum.each(fn _ ->
            send(parent, :chunk)
            # Stops pulling after the first chunk.
            Process.sleep(:infinity)
          end)
        end)

      assert_receive :chunk, 5_000
      # A marked sleep: let the pipes fill.
      Process.sleep(300)
      [pid | _] = Enum.sort(marked_pids(m))
      {:ok, io1} = File.read("/proc/#{pid}/io")
      Process.sleep(300)
      {:ok, io2} = File.read("/proc/#{pid}/io")
      # Nothing moves: the whole pipeline is blocked on full pipes.
      assert io1 == io2
      Process.exit(consumer, :kill)
      eventually(fn -> marked_pids(m) == [] end)
    end

    @tag :slow
    test "1 GiB streams through with flat memory" do
      before = :erlang.memory(:total)
      parent = self()

      {:ok, sampler} =
        Task.start(fn ->
          sample = fn sample, peak ->
            receive do
              :stop -> send(parent, {:peak, peak})
            after
              50 -> sample.(sample, max(peak, :erlang.memory(:total)))
            end
          end

          sample.(sample, 0)
        end)

      total =
        NetRunner.stream!(["head", "-c", "1073741824", "/dev/zero"])
        |> Enum.reduce(0, fn chunk, acc -> acc + byte_size(chunk) end)

      send(sampler, :stop)
      assert_receive {:peak, peak}, 1_000
      assert total == 1_073_741_824
      assert peak - before < 64 * 1024 * 1024
    end
  end
end
