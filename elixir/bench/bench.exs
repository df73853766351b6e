# NetRunner against what an Elixir user would otherwise use: System.cmd/3
# and a raw Port. One go: `cd elixir && MIX_ENV=prod mix run bench/bench.exs`
# (BENCH_SPAWN_N, BENCH_STDOUT_BYTES, BENCH_ROUNDTRIP_BYTES to change sizes).
defmodule NetRunner.Bench do
  @moduledoc false

  def time(fun) do
    t0 = System.monotonic_time(:microsecond)
    result = fun.()
    {System.monotonic_time(:microsecond) - t0, result}
  end

  def env_int(name, default),
    do: name |> System.get_env("#{default}") |> String.to_integer()

  # --- spawn ---------------------------------------------------------------

  def spawn_latency(n) do
    true_exe = System.find_executable("true")
    warm = fn f -> for _ <- 1..20, do: f.() end

    cases = [
      {"NetRunner.run", fn -> {"", 0} = NetRunner.run([true_exe]) end},
      {"System.cmd", fn -> {"", 0} = System.cmd(true_exe, []) end},
      {"Port", fn -> port_run(true_exe, []) end}
    ]

    for {name, f} <- cases do
      warm.(f)
      {us, _} = time(fn -> for _ <- 1..n, do: f.() end)
      {name, us / n}
    end
  end

  def port_run(exe, args) do
    port = Port.open({:spawn_executable, exe}, [:binary, :exit_status, args: args])

    receive do
      {^port, {:exit_status, 0}} -> :ok
    end
  end

  # --- stdout throughput -----------------------------------------------------

  def stdout(bytes) do
    head = System.find_executable("head")
    args = ["-c", "#{bytes}", "/dev/zero"]

    nr = fn ->
      ^bytes = NetRunner.stream!([head | args]) |> Enum.reduce(0, &(byte_size(&1) + &2))
    end

    port = fn ->
      p = Port.open({:spawn_executable, head}, [:binary, :exit_status, args: args])
      ^bytes = port_count(p, 0)
    end

    cmd = fn ->
      {_, 0} = System.cmd(head, args, into: File.stream!("/dev/null"))
    end

    for {name, f} <- [
          {"NetRunner.stream!", nr},
          {"Port", port},
          {"System.cmd (into /dev/null)", cmd}
        ] do
      {us, _} = time(f)
      {name, bytes / (us / 1_000_000) / 1_048_576}
    end
  end

  defp port_count(port, n) do
    receive do
      {^port, {:data, d}} -> port_count(port, n + byte_size(d))
      {^port, {:exit_status, 0}} -> n
    end
  end

  # --- stdin -> stdout round trip --------------------------------------------

  def roundtrip(bytes) do
    cat = System.find_executable("cat")
    chunk = :binary.copy(<<"0123456789abcdef">>, div(65_536, 16))
    input = Stream.repeatedly(fn -> chunk end) |> Stream.take(div(bytes, byte_size(chunk)))

    nr = fn ->
      ^bytes = NetRunner.stream!([cat], input: input) |> Enum.reduce(0, &(byte_size(&1) + &2))
    end

    # A port cannot close stdin alone: read until every byte came back.
    port = fn ->
      p = Port.open({:spawn_executable, cat}, [:binary, :exit_status])
      parent = self()

      writer =
        spawn_link(fn ->
          Enum.each(input, &Port.command(p, &1))
          send(parent, :written)
        end)

      _ = writer
      ^bytes = port_until(p, 0, bytes)
      Port.close(p)
    end

    for {name, f} <- [{"NetRunner.stream! (input:)", nr}, {"Port", port}] do
      {us, _} = time(f)
      {name, bytes / (us / 1_000_000) / 1_048_576}
    end
  end

  defp port_until(_port, n, total) when n >= total, do: n

  defp port_until(port, n, total) do
    receive do
      {^port, {:data, d}} -> port_until(port, n + byte_size(d), total)
    end
  end

  def report(title, rows, unit, better) do
    IO.puts("\n## #{title}\n")
    IO.puts("| | #{unit} | NetRunner ÷ this |")
    IO.puts("|---|---:|---:|")
    {_, base} = hd(rows)

    for {name, v} <- rows do
      _ = better
      ratio = base / v
      IO.puts("| #{name} | #{Float.round(v * 1.0, 1)} | #{Float.round(ratio, 2)} |")
    end
  end
end

alias NetRunner.Bench

n = Bench.env_int("BENCH_SPAWN_N", 500)
out = Bench.env_int("BENCH_STDOUT_BYTES", 1_073_741_824)
rt = Bench.env_int("BENCH_ROUNDTRIP_BYTES", 268_435_456)

IO.puts(
  "# NetRunner Elixir benchmark (#{System.schedulers_online()} schedulers, OTP #{System.otp_release()})"
)

Bench.report("Spawn latency (`true`, mean of #{n})", Bench.spawn_latency(n), "µs per run", :lower)

Bench.report(
  "stdout throughput (#{div(out, 1_048_576)} MiB)",
  Bench.stdout(out),
  "MiB/s",
  :higher
)

Bench.report(
  "stdin→stdout round trip through cat (#{div(rt, 1_048_576)} MiB)",
  Bench.roundtrip(rt),
  "MiB/s",
  :higher
)

IO.puts(
  "\nNetRunner ÷ this: for spawn latency (µs) ≤ 1.0 means NetRunner is at least as fast; " <>
    "for throughput (MiB/s) ≥ 1.0 means NetRunner is at least as fast."
)
