defmodule NetRunner.Process.Exec do
  @moduledoc """
  Spawning through the shepherd: checks the command and options, then asks
  the NIF to start it through the Rust library's launch path (pre-started
  shepherd, one-round-trip handshake, pipe ends passed by `SCM_RIGHTS` over
  the control socketpair) and waits for the result message.
  """
  alias NetRunner.Process.Nif

  @cgroup_limits [:cgroup_memory_max, :cgroup_cpu_max, :cgroup_pids_max]

  @typedoc "What a successful spawn hands back."
  @type spawned :: %{
          control: Nif.fd(),
          os_pid: pos_integer,
          stdin: Nif.fd() | nil,
          stdout: Nif.fd() | nil,
          stderr: Nif.fd() | nil
        }

  @doc "The cgroup limit options accepted (wired once the shepherd has cgroups)."
  @spec cgroup_limit_options() :: [atom]
  def cgroup_limit_options, do: @cgroup_limits

  @doc """
  Checks the command, arguments and options without starting anything.
  """
  @spec validate(term, term, keyword) ::
          :ok
          | {:error,
             {:invalid_cmd, String.t()}
             | {:invalid_args, String.t()}
             | {:invalid_cgroup_path, String.t()}
             | {:invalid_option, String.t()}
             | {:unsupported, String.t()}}
  def validate(cmd, args, opts) do
    with :ok <- validate_cmd(cmd),
         :ok <- validate_args(args),
         :ok <- validate_cgroup(opts),
         :ok <- validate_options(opts) do
      validate_unsupported(opts)
    end
  end

  defp validate_cmd(cmd) when not is_binary(cmd),
    do: {:error, {:invalid_cmd, "command must be a binary, got: #{inspect(cmd)}"}}

  defp validate_cmd(""), do: {:error, {:invalid_cmd, "command must not be empty"}}

  defp validate_cmd(cmd) do
    if String.contains?(cmd, <<0>>),
      do: {:error, {:invalid_cmd, "command must not contain NUL bytes"}},
      else: :ok
  end

  defp validate_args(args) when is_list(args) do
    cond do
      not Enum.all?(args, &is_binary/1) ->
        {:error, {:invalid_args, "args must be a list of binaries, got: #{inspect(args)}"}}

      Enum.any?(args, &String.contains?(&1, <<0>>)) ->
        {:error, {:invalid_args, "args must not contain NUL bytes"}}

      true ->
        :ok
    end
  end

  defp validate_args(args),
    do: {:error, {:invalid_args, "args must be a list of binaries, got: #{inspect(args)}"}}

  defp validate_cgroup(opts) do
    case Keyword.get(opts, :cgroup_path) do
      nil ->
        :ok

      path when is_binary(path) ->
        cond do
          String.starts_with?(path, "/") ->
            {:error, {:invalid_cgroup_path, "cgroup_path must be relative, got: #{path}"}}

          ".." in Path.split(path) ->
            {:error, {:invalid_cgroup_path, "cgroup_path must not contain '..', got: #{path}"}}

          String.contains?(path, <<0>>) ->
            {:error, {:invalid_cgroup_path, "cgroup_path must not contain NUL bytes"}}

          true ->
            :ok
        end

      other ->
        {:error,
         {:invalid_cgroup_path, "cgroup_path must be a relative path, got: #{inspect(other)}"}}
    end
  end

  defp validate_options(opts) do
    cond do
      Keyword.get(opts, :stderr, :consume) not in [:consume, :redirect, :disabled] ->
        {:error, {:invalid_option, "stderr must be :consume, :redirect or :disabled"}}

      not valid_timeout?(Keyword.get(opts, :kill_timeout, 5000)) ->
        {:error, {:invalid_option, "kill_timeout must be a non-negative integer (ms)"}}

      not env_ok?(Keyword.get(opts, :env, [])) ->
        {:error, {:invalid_option, "env must be a map or a list of {name, value | nil}"}}

      not (is_nil(Keyword.get(opts, :cd)) or is_binary(Keyword.get(opts, :cd))) ->
        {:error, {:invalid_option, "cd must be a path (binary)"}}

      true ->
        :ok
    end
  end

  defp valid_timeout?(t), do: is_integer(t) and t >= 0

  defp env_ok?(env) when is_map(env) or is_list(env) do
    Enum.all?(env, fn
      {k, v} -> name_ok?(k) and (is_nil(v) or is_binary(v) or is_atom(v) or is_number(v))
      _ -> false
    end)
  end

  defp env_ok?(_), do: false

  defp name_ok?(k) when is_binary(k), do: k != "" and not String.contains?(k, ["=", <<0>>])
  defp name_ok?(k) when is_atom(k), do: name_ok?(Atom.to_string(k))
  defp name_ok?(_), do: false

  # PTY and cgroups are not in the shepherd yet: refuse clearly rather than
  # run the program without what was asked. Wiring them is a matter of
  # passing the options into the spawn spec (see `spec/3`).
  defp validate_unsupported(opts) do
    cond do
      Keyword.get(opts, :pty, false) ->
        {:error, {:unsupported, "pty: the shepherd has no PTY support yet"}}

      Keyword.get(opts, :cgroup_path) != nil or
          Enum.any?(@cgroup_limits, &Keyword.has_key?(opts, &1)) ->
        {:error, {:unsupported, "cgroup: the shepherd has no cgroup support yet"}}

      true ->
        :ok
    end
  end

  @doc """
  Starts `cmd` with `args`; the options were checked by `validate/3`.
  `{:ok, spawned}`, `{:error, {:exec, errno, stage}}` when the program
  cannot be started (not found, not executable, bad `cd`, …) or
  `{:error, reason}`.
  """
  @spec spawn(binary, [binary], keyword) :: {:ok, spawned} | {:error, term}
  def spawn(cmd, args, opts) do
    {:ok, ref} = Nif.nif_spawn(spec(cmd, args, opts))

    receive do
      {:net_runner_spawned, ^ref, {:ok, control, os_pid, stdin, stdout, stderr}} ->
        {:ok, %{control: control, os_pid: os_pid, stdin: stdin, stdout: stdout, stderr: stderr}}

      {:net_runner_spawned, ^ref, {:error, reason}} ->
        {:error, reason}
    end
  end

  defp spec(cmd, args, opts) do
    env =
      opts
      |> Keyword.get(:env, [])
      |> Enum.map(fn {k, v} -> {to_string(k), if(is_nil(v), do: nil, else: to_string(v))} end)

    cd =
      case Keyword.get(opts, :cd) do
        nil -> nil
        dir -> Path.expand(dir)
      end

    stderr = Keyword.get(opts, :stderr, :consume)
    kill_timeout = Keyword.get(opts, :kill_timeout, 5000)
    {cmd, args, env, {Keyword.get(opts, :env_clear, false), cd, stderr, kill_timeout, true}}
  end
end
