#!/usr/bin/env bash
# Installs what the test suites need and a fresh machine lacks: tmux (the
# CLI's and PTY's real-terminal tests) and Elixir with the Erlang headers
# (the Elixir package). Debian packages; needs root (or says what to run).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ -f elixir/mix.exs ] && ! command -v mix >/dev/null 2>&1; then
  missing+=(elixir erlang-dev)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "prereqs: missing ${missing[*]}: install them (Debian: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "prereqs: installing ${missing[*]}"
apt-get update
apt-get install -y "${missing[@]}"
