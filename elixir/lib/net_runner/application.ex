defmodule NetRunner.Application do
  @moduledoc "The OTP application: starts `NetRunner.WatcherSupervisor`."
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      {DynamicSupervisor, name: NetRunner.WatcherSupervisor, strategy: :one_for_one}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: NetRunner.Supervisor)
  end
end
