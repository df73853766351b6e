//! Tells `net_runner`'s build script where this package's sources are.
//!
//! `net_runner` depends on this package and builds the shepherd binary from
//! these sources with a nested cargo (static, stripped, LTO), then embeds it.
//! With `links`, cargo hands the `root` below to that build script as
//! `DEP_NETRUNNER_SHEPHERD_ROOT`, wherever the package lives: this workspace,
//! a registry download, a vendor directory or a `[patch]`. The library target
//! holds the shepherd's code, which the binary runs and which `net_runner`
//! also calls in a forked shepherd.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:root={dir}");
    println!("cargo:rerun-if-changed=build.rs");
}
