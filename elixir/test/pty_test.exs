defmodule NetRunner.PtyTest do
  use ExUnit.Case, async: true
  import NetRunner.TestHelpers

  alias NetRunner.Process, as: P

  defp read_all(p, acc \\ []) do
    case P.read(p) do
      {:ok, data} -> read_all(p, [acc | data])
      :eof -> IO.iodata_to_binary(acc)
    end
  end

  test "the program's stdin, stdout and stderr are a terminal" do
    cmd = ["sh", "-c", "test -t 0 && test -t 1 && test -t 2 && echo tty"]
    assert NetRunner.run(cmd, pty: true) == {"tty\r\n", 0}
    assert NetRunner.run(cmd) == {"", 1}
  end

  test "stty size: 24x80 by default, the size asked, and after set_window_size" do
    assert NetRunner.run(["stty", "size"], pty: true) == {"24 80\r\n", 0}
    assert NetRunner.run(["stty", "size"], pty: {40, 120}) == {"40 120\r\n", 0}
    assert NetRunner.run(["stty", "size"], pty: [rows: 30, cols: 100]) == {"30 100\r\n", 0}

    {:ok, p} = P.start("sh", ["-c", "stty size; read x; stty size"], pty: true)
    assert P.read(p) == {:ok, "24 80\r\n"}
    assert P.set_window_size(p, 50, 132) == :ok
    assert P.write(p, "go\n") == :ok
    assert P.await_exit(p, 5_000) == {:ok, 0}
    # The echo of "go", then the new size.
    assert read_all(p) == "go\r\n50 132\r\n"
    assert P.set_window_size(p, 0, 80) == {:error, :invalid_size}
    assert P.set_window_size(p, 24, 10_001) == {:error, :invalid_size}
    assert P.set_window_size(p, "24", 80) == {:error, :invalid_size}
  end

  test "set_window_size on a process without a PTY" do
    {:ok, p} = P.start("cat")
    assert P.set_window_size(p, 24, 80) == {:error, :not_a_pty}
    GenServer.stop(p)
  end

  test "echo hi, read late: no output lost in 100 runs" do
    for _ <- 1..100 do
      {:ok, p} = P.start("echo", ["hi"], pty: true)
      assert P.await_exit(p, 5_000) == {:ok, 0}
      assert read_all(p) == "hi\r\n"
      GenServer.stop(p)
    end

    for _ <- 1..20, do: assert(NetRunner.run(["echo", "hi"], pty: true) == {"hi\r\n", 0})
  end

  test "close_stdin ends the input through the terminal (VEOF)" do
    # After a partial line: ^D twice.
    {:ok, p} = P.start("wc", ["-c"], pty: true)
    assert P.write(p, "abc") == :ok
    assert P.close_stdin(p) == :ok
    assert P.close_stdin(p) == :ok
    assert P.write(p, "more") == {:error, :closed}
    assert P.await_exit(p, 5_000) == {:ok, 0}
    out = read_all(p)
    assert out == "abc3\r\n"
    assert out |> String.replace_prefix("abc", "") |> String.trim() == "3"

    # At the start of a line: once.
    {:ok, p} = P.start("wc", ["-c"], pty: true)
    assert P.write(p, "abc\n") == :ok
    assert P.close_stdin(p) == :ok
    assert P.await_exit(p, 5_000) == {:ok, 0}
    assert read_all(p) == "abc\r\n4\r\n"

    # run/2 with and without input.
    assert NetRunner.run(["wc", "-c"], pty: true, input: "abc") == {"abc3\r\n", 0}
    assert NetRunner.run(["cat"], pty: true) == {"", 0}
  end

  test "raw mode: no echo, no newline translation" do
    assert NetRunner.run(["printf", "a\\n"], pty: [raw: true]) == {"a\n", 0}
  end

  test "stderr is the same terminal" do
    assert NetRunner.run(["sh", "-c", "echo err >&2"], pty: true) == {"err\r\n", 0}
    {:ok, p} = P.start("sh", ["-c", "echo err >&2"], pty: true)
    assert P.await_exit(p, 5_000) == {:ok, 0}
    assert P.read_stderr(p) == :eof
    assert read_all(p) == "err\r\n"
  end

  test "a bad :pty is an option error" do
    assert {:error, {:invalid_option, _}} = NetRunner.run(["true"], pty: {0, 80})
    assert {:error, {:invalid_option, _}} = NetRunner.run(["true"], pty: "yes")
    assert {:error, {:invalid_option, _}} = P.start("true", [], pty: [rows: 24, colour: 1])
  end

  test "stopping the GenServer kills the whole session" do
    m = marker()
    on_exit(fn -> kill_marked(m) end)

    {:ok, p} =
      P.start("sh", ["-c", "sleep 60 & sleep 60; wait"],
        pty: true,
        env: marker_env(m),
        kill_timeout: 100
      )

    eventually(fn -> length(marked_pids(m)) >= 3 end)
    GenServer.stop(p)
    eventually(fn -> marked_pids(m) == [] end)
  end
end
