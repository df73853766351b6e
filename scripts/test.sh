#!/usr/bin/env bash
# Runs every test suite of the repository: the Rust workspace (unit,
# integration and doc tests) and the Elixir package, after installing what
# a fresh machine lacks (scripts/prereqs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prereqs.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast --lib --bins --tests
fi
# nextest does not run doctests.
cargo test --workspace --doc

if [ -f elixir/mix.exs ]; then
  (cd elixir && mix test)
fi
