defmodule NetRunner.CgroupTest do
  # Not async: "no cgroup directory left" looks at every netrunner-<pid>-*
  # directory of this BEAM.
  use ExUnit.Case, async: false
  import NetRunner.TestHelpers

  alias NetRunner.Process, as: P
  alias NetRunner.Process.Exec

  defp unique(name), do: "nrt-#{name}-#{System.unique_integer([:positive])}-#{:os.getpid()}"

  # The directories a relative cgroup path would have in every hierarchy
  # mounted here (v2 and v1, from /proc/self/mountinfo), below our own cgroup.
  defp cgroup_dirs(path) do
    own =
      for line <- String.split(File.read!("/proc/self/cgroup"), "\n", trim: true),
          [_, ctrls, dir] = String.split(line, ":", parts: 3),
          ctrl <- if(ctrls == "", do: [:v2], else: String.split(ctrls, ",")),
          into: %{},
          do: {ctrl, dir}

    for line <- String.split(File.read!("/proc/self/mountinfo"), "\n", trim: true),
        [left, right] <- [String.split(line, " - ", parts: 2)],
        [fstype, _src, opts | _] = String.split(right, " "),
        fstype in ["cgroup", "cgroup2"],
        point = left |> String.split(" ") |> Enum.at(4),
        ctrl =
          if(fstype == "cgroup2", do: :v2, else: Enum.find(String.split(opts, ","), &own[&1])),
        base = own[ctrl],
        base != nil do
      Path.join([point, base, path])
    end
  end

  defp leftovers(path), do: Enum.filter(cgroup_dirs(path), &File.exists?/1)

  describe "invalid paths (no hierarchy needed)" do
    @shapes [
      {"/sys/fs/cgroup/x", "relative"},
      {"/", "relative"},
      {"a/../b", ".."},
      {"..", ".."},
      {"../escape", ".."},
      {"a/..", ".."},
      {"", "empty"},
      {"./a", "'.'"},
      {"a/./b", "'.'"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {"a\nb", "newline"},
      {"a\0b", "NUL"},
      {String.duplicate("x", 256), "255"},
      {Enum.join(List.duplicate("abcdefgh", 120), "/"), "1024"}
    ]

    test "every shape is {:invalid_cgroup_path, msg} from run, stream, start and start_link" do
      for {path, says} <- @shapes do
        assert {:error, {:invalid_cgroup_path, msg}} = NetRunner.run(["true"], cgroup_path: path)
        assert msg =~ says, "#{inspect(path)}: #{msg}"

        assert {:error, {:invalid_cgroup_path, ^msg}} =
                 NetRunner.stream(["true"], cgroup_path: path)

        assert {:error, {:invalid_cgroup_path, ^msg}} = P.start("true", [], cgroup_path: path)

        assert {:error, {:invalid_cgroup_path, ^msg}} =
                 P.start_link("true", [], cgroup_path: path)
      end

      for other <- [123, :atom, ~c"charlist", {"a"}] do
        assert {:error, {:invalid_cgroup_path, _}} = NetRunner.run(["true"], cgroup_path: other)
      end
    end

    test "the Rust library refuses them too (the NIF's own mapping)" do
      for {path, says} <- @shapes, not String.contains?(path, <<0>>) do
        assert {:error, {:invalid_cgroup_path, msg}} = Exec.spawn("true", [], cgroup_path: path)
        assert msg =~ says, "#{inspect(path)}: #{msg}"
      end
    end

    test "bad limit values are option errors" do
      for opts <- [
            [cgroup_memory_max: 0],
            [cgroup_memory_max: "1G"],
            [cgroup_pids_max: -1],
            [cgroup_cpu_max: 50_000],
            [cgroup_cpu_max: {500, 100_000}],
            [cgroup_cpu_max: {50_000, 2_000_000}],
            [cgroup_base: :root]
          ] do
        assert {:error, {:invalid_option, _}} = NetRunner.run(["true"], opts), inspect(opts)
      end
    end
  end

  describe "with a writable hierarchy" do
    @describetag :cgroup

    test "the child runs in the cgroup, which is removed afterwards" do
      path = unique("path")
      assert {out, 0} = NetRunner.run(["cat", "/proc/self/cgroup"], cgroup_path: path)
      assert out |> String.split("\n") |> Enum.any?(&String.ends_with?(&1, "/" <> path))
      eventually(fn -> leftovers(path) == [] end)

      {:ok, p} = P.start("sleep", ["60"], cgroup_path: path)
      assert Enum.any?(cgroup_dirs(path), &File.exists?/1)
      Process.exit(p, :kill)
      eventually(fn -> leftovers(path) == [] end)
    end

    test "a path in use is a :cgroup error; nothing runs twice there" do
      path = unique("busy")
      {:ok, p} = P.start("sleep", ["60"], cgroup_path: path)
      assert {:error, {:cgroup, msg}} = NetRunner.run(["true"], cgroup_path: path)
      assert msg =~ "already exists"
      GenServer.stop(p)
      eventually(fn -> leftovers(path) == [] end)
    end

    @tag :cgroup_memory
    test "a memory hog is OOM-killed under a 50M limit, and it shows" do
      path = unique("oom")
      hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}"

      {:ok, p} = P.start("sh", ["-c", hog], cgroup_path: path, cgroup_memory_max: 50_000_000)

      assert P.await_exit(p, 30_000) == {:ok, 137}
      stats = P.stats(p)
      assert stats.end_reason == :oom_killed
      assert stats.cgroup.oom_kills >= 1
      assert stats.cgroup.memory_peak_bytes <= 50_000_000
      assert P.read(p) == :eof

      # The same through run/2: the status, as for any SIGKILL.
      assert NetRunner.run(["sh", "-c", hog], cgroup_memory_max: 50_000_000) == {"", 137}
      eventually(fn -> leftovers(path) == [] end)

      # And the generated ones of limits without a path.
      eventually(fn ->
        cgroup_dirs("netrunner-#{:os.getpid()}-*") |> Enum.flat_map(&Path.wildcard/1) == []
      end)
    end

    @tag :cgroup_memory
    test "cgroup figures; a program within its limit ends :exited" do
      {:ok, p} = P.start("true", [], cgroup_memory_max: 64_000_000)
      assert P.await_exit(p) == {:ok, 0}
      s = P.stats(p)
      assert s.end_reason == :exited
      assert s.cgroup.oom_kills == 0
      assert is_integer(s.cgroup.memory_peak_bytes)

      assert Map.keys(s.cgroup) |> Enum.sort() ==
               Enum.sort([
                 :memory_peak_bytes,
                 :oom_kills,
                 :cpu_usage_us,
                 :cpu_throttled_periods,
                 :cpu_throttled_us,
                 :pids_peak
               ])

      {:ok, p} = P.start("true")
      P.await_exit(p)
      assert P.stats(p).cgroup == nil
    end

    @tag :cgroup_pids
    test "cgroup_pids_max limits forks" do
      assert {out, status} =
               NetRunner.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"],
                 cgroup_pids_max: 4,
                 stderr: :redirect
               )

      assert status != 0 and out =~ "fork"
    end
  end
end
