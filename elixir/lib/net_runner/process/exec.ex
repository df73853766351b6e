defmodule NetRunner.Process.Exec do
  @moduledoc """
  Spawning through the shepherd: checks the command and options, then asks
  the NIF to start it through the Rust library's launch path (pre-started
  shepherd, one-round-trip handshake, pipe ends passed by `SCM_RIGHTS` over
  the control socketpair) and waits for the result message.
  """
  alias NetRunner.Process.Nif

  @cgroup_limits [:cgroup_memory_max, :cgroup_cpu_max, :cgroup_pids_max]
  @pty_max 10_000

  @typedoc "What a successful spawn hands back."
  @type spawned :: %{
          control: Nif.fd(),
          os_pid: pos_integer,
          stdin: Nif.fd() | nil,
          stdout: Nif.fd() | nil,
          stderr: Nif.fd() | nil
        }

  @doc "The cgroup limit options accepted."
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
             | {:invalid_option, String.t()}}
  def validate(cmd, args, opts) do
    with :ok <- validate_cmd(cmd),
         :ok <- validate_args(args),
         :ok <- validate_cgroup(opts),
         :ok <- validate_options(opts),
         :ok <- validate_pty(opts) do
      validate_cgroup_limits(opts)
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

  # The same checks, in the same order, as the Rust library's (which
  # checks again): every shape is refused before anything starts.
  defp validate_cgroup(opts) do
    case Keyword.get(opts, :cgroup_path) do
      nil ->
        :ok

      path when is_binary(path) ->
        case cgroup_path_problem(path) do
          nil ->
            :ok

          reason ->
            {:error, {:invalid_cgroup_path, "cgroup_path #{inspect(path)} is invalid: #{reason}"}}
        end

      other ->
        {:error,
         {:invalid_cgroup_path,
          "cgroup_path must be a relative path (a binary), got: #{inspect(other)}"}}
    end
  end

  defp cgroup_path_problem(path) do
    cond do
      String.starts_with?(path, "/") -> "it is absolute; give it relative to the base"
      path == "" -> "it is empty"
      String.contains?(path, <<0>>) -> "it contains a NUL byte"
      String.contains?(path, "\n") -> "it contains a newline"
      byte_size(path) > 1024 -> "it is longer than 1024 bytes"
      true -> path |> String.split("/") |> Enum.find_value(&component_problem/1)
    end
  end

  defp component_problem(""), do: "it has an empty component ('//' or a trailing '/')"
  defp component_problem("."), do: "it contains a '.' component"
  defp component_problem(".."), do: "it contains a '..' component"
  defp component_problem(c) when byte_size(c) > 255, do: "a component is longer than 255 bytes"
  defp component_problem(_), do: nil

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

      not (is_nil(opts[:run_timeout]) or valid_timeout?(opts[:run_timeout])) ->
        {:error, {:invalid_option, "timeout must be a non-negative integer (ms) or :infinity"}}

      true ->
        :ok
    end
  end

  defp validate_pty(opts) do
    case pty_spec(Keyword.get(opts, :pty, false)) do
      {:error, msg} -> {:error, {:invalid_option, msg}}
      _ -> :ok
    end
  end

  @doc """
  The `:pty` option as `nil` (no terminal) or `{rows, cols, raw}`:
  `true` is a cooked 24×80 terminal, `{rows, cols}` a cooked one of that
  size, and a keyword list takes `:rows`, `:cols` (default 24, 80) and
  `:raw` (default false).
  """
  @spec pty_spec(term) :: nil | {pos_integer, pos_integer, boolean} | {:error, String.t()}
  def pty_spec(pty) when pty in [false, nil], do: nil
  def pty_spec(true), do: {24, 80, false}
  def pty_spec({rows, cols}), do: pty_spec(rows: rows, cols: cols)

  def pty_spec(opts) when is_list(opts) do
    rows = Keyword.get(opts, :rows, 24)
    cols = Keyword.get(opts, :cols, 80)
    raw = Keyword.get(opts, :raw, false)

    cond do
      not Keyword.keyword?(opts) or
          Enum.any?(Keyword.keys(opts), &(&1 not in [:rows, :cols, :raw])) ->
        {:error, "pty: only :rows, :cols and :raw are accepted, got: #{inspect(opts)}"}

      not (window_size?(rows) and window_size?(cols)) ->
        {:error, "pty: rows and cols must be integers from 1 to #{@pty_max}"}

      not is_boolean(raw) ->
        {:error, "pty: raw must be a boolean"}

      true ->
        {rows, cols, raw}
    end
  end

  def pty_spec(other),
    do: {:error, "pty must be a boolean, {rows, cols} or a keyword list, got: #{inspect(other)}"}

  @doc "Whether `n` is a valid number of rows or columns (1 to 10000)."
  @spec window_size?(term) :: boolean
  def window_size?(n), do: is_integer(n) and n >= 1 and n <= @pty_max

  defp validate_cgroup_limits(opts) do
    positive = fn v -> is_nil(v) or (is_integer(v) and v > 0) end

    cond do
      not positive.(opts[:cgroup_memory_max]) ->
        {:error, {:invalid_option, "cgroup_memory_max must be a positive integer (bytes)"}}

      not positive.(opts[:cgroup_pids_max]) ->
        {:error, {:invalid_option, "cgroup_pids_max must be a positive integer"}}

      not cpu_max_ok?(opts[:cgroup_cpu_max]) ->
        {:error,
         {:invalid_option,
          "cgroup_cpu_max must be {quota_us, period_us}: quota at least 1000, period 1000 to 1000000"}}

      not (is_nil(opts[:cgroup_base]) or is_binary(opts[:cgroup_base])) ->
        {:error,
         {:invalid_option, "cgroup_base must be a cgroup path (binary), e.g. \"/netrunner\""}}

      true ->
        :ok
    end
  end

  defp cpu_max_ok?(nil), do: true

  defp cpu_max_ok?({quota, period}) when is_integer(quota) and is_integer(period),
    do: quota >= 1000 and period >= 1000 and period <= 1_000_000

  defp cpu_max_ok?(_), do: false

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

  @doc """
  Starts `cmd` with `args`; the options were checked by `validate/3`.
  `{:ok, spawned}`, `{:error, {:exec, errno, stage}}` when the program
  cannot be started (not found, not executable, bad `cd`, …),
  `{:error, {:cgroup, msg}}` when its cgroup cannot be set up (nothing
  ran), or `{:error, reason}`.
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

    extra =
      {pty_spec(Keyword.get(opts, :pty, false)), opts[:cgroup_path], opts[:cgroup_base],
       opts[:cgroup_memory_max], opts[:cgroup_pids_max], opts[:cgroup_cpu_max],
       opts[:run_timeout]}

    {cmd, args, env, {Keyword.get(opts, :env_clear, false), cd, stderr, kill_timeout, true},
     extra}
  end
end
