defmodule NetRunner.Command do
  @moduledoc """
  Reusable command templates.

      iex> cmd = NetRunner.Command.new("echo", ["hi"])
      iex> NetRunner.run(cmd)
      {"hi\\n", 0}

  With `use NetRunner.Command`, `defcommand/3` defines functions returning
  commands:

      defmodule MyApp.Tools do
        use NetRunner.Command
        defcommand :list, "ls", args: ["-la"], timeout: 5_000
      end

      MyApp.Tools.list()          # %NetRunner.Command{executable: "ls", args: ["-la"], ...}
      MyApp.Tools.list(["/tmp"])  # extra args appended
      MyApp.Tools.__commands__()  # [:list]
  """

  defstruct executable: nil, args: [], opts: []

  @type t :: %__MODULE__{executable: String.t(), args: [String.t()], opts: keyword}

  @doc """
  A command. Raises `ArgumentError` ("executable must be a string", "args
  must be a list").
  """
  @spec new(String.t(), [String.t()], keyword) :: t
  def new(executable, args \\ [], opts \\ [])

  def new(executable, _args, _opts) when not is_binary(executable),
    do: raise(ArgumentError, "executable must be a string, got: #{inspect(executable)}")

  def new(_executable, args, _opts) when not is_list(args),
    do: raise(ArgumentError, "args must be a list, got: #{inspect(args)}")

  def new(executable, args, opts), do: %__MODULE__{executable: executable, args: args, opts: opts}

  @doc """
  `{executable, args, opts}`, where `override_opts` win over the
  command's own options.

      iex> cmd = NetRunner.Command.new("ls", ["-l"], timeout: 1)
      iex> NetRunner.Command.to_cmd_args_opts(cmd, timeout: 2)
      {"ls", ["-l"], [timeout: 2]}
  """
  @spec to_cmd_args_opts(t, keyword) :: {String.t(), [String.t()], keyword}
  def to_cmd_args_opts(%__MODULE__{} = cmd, override_opts \\ []) do
    {cmd.executable, cmd.args, Keyword.merge(cmd.opts, override_opts)}
  end

  @doc false
  defmacro __using__(_opts) do
    quote do
      import NetRunner.Command, only: [defcommand: 2, defcommand: 3]
      Module.register_attribute(__MODULE__, :net_runner_commands, accumulate: true)
      @before_compile NetRunner.Command
    end
  end

  @doc false
  defmacro __before_compile__(env) do
    names = env.module |> Module.get_attribute(:net_runner_commands) |> Enum.reverse()

    quote do
      @doc "The commands defined with `defcommand`, in definition order."
      @spec __commands__() :: [atom]
      def __commands__, do: unquote(names)
    end
  end

  @doc """
  Defines `name/0` and `name/1` returning a `%NetRunner.Command{}` running
  `executable` with `opts[:args]` (plus the extra args given to `name/1`)
  and the other options.
  """
  defmacro defcommand(name, executable, opts \\ []) do
    quote bind_quoted: [name: name, executable: executable, opts: opts] do
      @net_runner_commands name
      @doc "The `#{executable}` command (extra args are appended)."
      @spec unquote(name)([String.t()]) :: NetRunner.Command.t()
      def unquote(name)(extra_args \\ []) do
        opts = unquote(Macro.escape(opts))

        NetRunner.Command.new(
          unquote(executable),
          Keyword.get(opts, :args, []) ++ extra_args,
          Keyword.delete(opts, :args)
        )
      end
    end
  end
end
