//! Tells `net_runner`'s build script where this package's sources are, so
//! that the shepherd it builds with a nested cargo uses exactly this copy of
//! the protocol (the one the library itself is compiled against), also when
//! it comes from a `[patch]` or a vendor directory. Cargo passes the `root`
//! below to direct dependents as `DEP_NET_RUNNER_PROTO_ROOT` (`links`).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:root={dir}");
    println!("cargo:rerun-if-changed=build.rs");
}
