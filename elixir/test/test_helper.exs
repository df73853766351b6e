# Tests that start a second BEAM or distributed nodes are slower; all run by
# default (`mix test --exclude slow` skips them).
#
# cgroup tests need a writable cgroup hierarchy (root, or a delegated
# subtree); each kind is probed once and excluded with the reason where
# this machine has none.
probes = [
  cgroup: [],
  cgroup_memory: [cgroup_memory_max: 64_000_000],
  cgroup_pids: [cgroup_pids_max: 64]
]

excluded =
  for {tag, opts} <- probes,
      path = "nrt-probe-#{tag}-#{:os.getpid()}",
      result = NetRunner.run(["true"], [cgroup_path: path] ++ opts),
      result != {"", 0} do
    IO.puts("Skipping @tag #{tag}: no writable cgroup hierarchy here (#{inspect(result)})")
    tag
  end

ExUnit.start(capture_log: true, exclude: excluded)
