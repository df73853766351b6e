defmodule Mix.Tasks.Compile.NetRunnerNative do
  @moduledoc """
  Builds the NIF (`native/net_runner_nif`, a member of the repository's
  Cargo workspace) with `cargo build --release` and installs it as
  `priv/net_runner_nif.so`.

  The shepherd binary is built by the `net_runner` crate's build script
  and embedded in the NIF (it is exec'd from a memfd), so nothing else is
  installed. Cargo decides what is stale; when nothing changed this costs
  one `cargo` invocation.

  Environment: `NETRUNNER_CARGO` (the cargo command, default `cargo`),
  `NETRUNNER_NIF_PROFILE` (`release` by default, or `debug`).
  """
  use Mix.Task.Compiler

  @impl Mix.Task.Compiler
  def run(_args) do
    root = Path.expand("../..", __DIR__)
    crate = Path.join(root, "native/net_runner_nif")
    priv = Path.join(root, "priv")
    cargo = System.get_env("NETRUNNER_CARGO", "cargo")
    profile = System.get_env("NETRUNNER_NIF_PROFILE", "release")

    args =
      ["build", "--manifest-path", Path.join(crate, "Cargo.toml"), "--lib"] ++
        if(profile == "release", do: ["--release"], else: []) ++
        ["--message-format", "json-render-diagnostics"]

    case System.find_executable(cargo) do
      nil ->
        Mix.raise("net_runner: `#{cargo}` not found: Rust (cargo) is needed to build the NIF")

      exe ->
        {out, status} = System.cmd(exe, args, cd: crate, stderr_to_stdout: false)

        if status != 0 do
          Mix.raise("net_runner: cargo build of the NIF failed (status #{status})")
        end

        so = artifact(out) || Mix.raise("net_runner: cargo did not report the NIF library")
        File.mkdir_p!(priv)
        target = Path.join(priv, "net_runner_nif.so")

        if stale?(so, target) do
          # Copy then rename: a running BEAM that loaded the old file keeps it.
          tmp = target <> ".tmp"
          File.cp!(so, tmp)
          File.rename!(tmp, target)
          {:ok, []}
        else
          {:noop, []}
        end
    end
  end

  defp artifact(cargo_json) do
    cargo_json
    |> String.split("\n")
    |> Enum.filter(&String.contains?(&1, ~s("reason":"compiler-artifact")))
    |> Enum.filter(&String.contains?(&1, ~s("name":"net_runner_nif")))
    |> Enum.find_value(fn line ->
      case Regex.run(~r/"filenames":\["([^"]+\.so)"/, line) do
        [_, path] -> path
        _ -> nil
      end
    end)
  end

  defp stale?(src, dst) do
    case {File.stat(src), File.stat(dst)} do
      {{:ok, s}, {:ok, d}} -> s.mtime > d.mtime or s.size != d.size
      _ -> true
    end
  end
end
