# Tests that start a second BEAM or distributed nodes are slower; all run by
# default (`mix test --exclude slow` skips them).
ExUnit.start(capture_log: true)
