defmodule NetRunner.Watcher do
  @moduledoc """
  Kills an OS process when its `NetRunner.Process` GenServer dies, however
  it dies (even `Process.exit(pid, :kill)`, where no `terminate/2` runs).

  One watcher per OS process, under `NetRunner.WatcherSupervisor`. It holds
  the process's descriptor resources and monitors the GenServer; on `:DOWN`
  it closes them. Closing the control socket makes the shepherd terminate
  the whole tree (SIGTERM, kill timeout, SIGKILL) and exit. If the whole
  BEAM dies, the kernel closes the socket and the shepherd does the same.
  """
  use GenServer, restart: :temporary

  alias NetRunner.Process.Nif

  @doc "Starts a watcher for `gen_pid` holding `fds` (control socket first)."
  @spec watch(pid, [Nif.fd()]) :: DynamicSupervisor.on_start_child()
  def watch(gen_pid, fds) do
    DynamicSupervisor.start_child(NetRunner.WatcherSupervisor, {__MODULE__, {gen_pid, fds}})
  end

  @doc false
  @spec start_link({pid, [Nif.fd()]}) :: GenServer.on_start()
  def start_link(arg), do: GenServer.start_link(__MODULE__, arg)

  @impl true
  def init({gen_pid, fds}) do
    {:ok, {Process.monitor(gen_pid), fds}}
  end

  @impl true
  def handle_info({:DOWN, ref, :process, _, _}, {ref, fds}) do
    Enum.each(fds, &Nif.nif_close/1)
    {:stop, :normal, nil}
  end

  def handle_info(_msg, state), do: {:noreply, state}
end
