#!/usr/bin/env bash
# Proves that what `cargo package` produces is self-sufficient (issue 9):
# packages the workspace, unpacks the .crate files into a temp dir outside
# the repository, builds a tiny consumer against them ([patch.crates-io],
# offline after one fetch) and runs a real command through net_runner with
# no NETRUNNER_SHEPHERD, so the shepherd can only be the embedded one. Then
# `cargo install`s the CLI from its unpacked package and runs it too.
#
# `--no-verify`: verification would compile every package once more from
# its unpacked copy and only prove that it compiles; the consumer build
# below compiles the same unpacked packages and also runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/netrunner-package.XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
case "$tmp/" in
  "$repo"/*) echo "check-package: temp dir $tmp is inside the repository" >&2; exit 1 ;;
esac

# Nothing from the caller may point the library at a shepherd binary or
# steer the builds into the repository's target dir.
unset NETRUNNER_SHEPHERD NETRUNNER_NO_EMBED CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
export CARGO_TARGET_DIR="$tmp/target"

echo "check-package: cargo package --workspace (bench is publish = false)"
cargo package --workspace --exclude netrunner-bench --no-verify --allow-dirty --quiet --target-dir "$tmp/package-target"
mkdir "$tmp/crates"
for c in "$tmp"/package-target/package/*.crate; do
  tar -xzf "$c" -C "$tmp/crates"
done
ls "$tmp/crates"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$tmp"/crates/net_runner-*/Cargo.toml | head -1)
dir_of() { # the unpacked directory of a package
  local d="$tmp/crates/$1-$version"
  [ -f "$d/Cargo.toml.orig" ] || { echo "check-package: no unpacked package $1-$version" >&2; exit 1; }
  printf '%s' "$d"
}
patches=""
for p in net_runner_proto netrunner-shepherd net_runner; do
  patches+="$p = { path = \"$(dir_of "$p")\" }"$'\n'
done

mkdir -p "$tmp/consumer/src/bin"
# The README's library example, exactly as shown, with the dependency lines
# the README gives next to it (its net_runner line is the patched version).
readme_deps=$(awk '/^```toml$/{f=1;next} /^```$/{f=0} f' README.md | grep -v -e '^\[dependencies\]' -e '^net_runner = ')
# Every runnable Rust block of the README (```rust, not ```rust,no_run)
# becomes a binary of its own: readme1, readme2, ...
awk -v dir="$tmp/consumer/src/bin" '
  /^```rust$/ { n++; f = 1; out = dir "/readme" n ".rs"; next }
  /^```$/ { f = 0 }
  f { print > out }
' README.md
cat >"$tmp/consumer/Cargo.toml" <<EOF
[package]
name = "packaged-consumer"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
net_runner = "=$version"
$readme_deps

[patch.crates-io]
$patches
[workspace]
EOF
cat >"$tmp/consumer/src/main.rs" <<'EOF'
fn main() {
    let out = net_runner::Command::new("echo")
        .arg("packaged-ok")
        .run_blocking()
        .expect("running echo through net_runner");
    assert!(out.status.success(), "echo failed: {}", out.status);
    print!("{}", String::from_utf8_lossy(&out.stdout));
}
EOF

echo "check-package: building a consumer of the unpacked packages (offline)"
cargo fetch --manifest-path "$tmp/consumer/Cargo.toml" --quiet
cargo build --offline --manifest-path "$tmp/consumer/Cargo.toml"
# The shepherd was built from the packaged sources, not found elsewhere.
grep -q "$(dir_of netrunner-shepherd)" "$tmp/target/netrunner-shepherd/packaged/Cargo.toml"
got=$("$tmp/target/debug/packaged-consumer")
if [ "$got" != "packaged-ok" ]; then
  echo "check-package: consumer printed '$got', expected 'packaged-ok'" >&2
  exit 1
fi
echo "check-package: consumer ran echo through the embedded shepherd: $got"
for bin in "$tmp"/consumer/src/bin/readme*.rs; do
  name=$(basename "$bin" .rs)
  "$tmp/target/debug/$name" >/dev/null
done
echo "check-package: the README's $(ls "$tmp"/consumer/src/bin/readme*.rs | wc -l) Rust examples built and ran as shown"

echo "check-package: cargo install netrunner-cli from its unpacked package (offline)"
cli_patches=()
for p in net_runner_proto netrunner-shepherd net_runner; do
  cli_patches+=(--config "patch.crates-io.$p.path=\"$(dir_of "$p")\"")
done
cargo install --offline --debug --quiet --path "$(dir_of netrunner-cli)" \
  --root "$tmp/cli" "${cli_patches[@]}"
got=$("$tmp/cli/bin/netrunner" run -- echo cli-ok)
if [ "$got" != "cli-ok" ]; then
  echo "check-package: netrunner printed '$got', expected 'cli-ok'" >&2
  exit 1
fi
echo "check-package: installed netrunner ran echo: $got"
echo "check-package: OK"
