# The compiler task that builds the NIF with cargo lives outside lib/ (it is
# needed before the project's own code is compiled).
Code.require_file("mix/tasks/compile.net_runner_native.ex", __DIR__)

defmodule NetRunner.MixProject do
  use Mix.Project

  def project do
    [
      app: :net_runner,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:net_runner_native | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      # No dependencies at all: nothing from Hex is needed to build or test.
      deps: [],
      docs: [main: "readme"]
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {NetRunner.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
