//! Builds the shepherd binary (in release, with its own target dir) so that
//! the library can embed it: a user who adds `net_runner` installs nothing
//! else and downloads nothing at run time.
//!
//! The shepherd's sources come from the `netrunner-shepherd` dependency,
//! whose build script reports its directory (`links`, so cargo passes it as
//! `DEP_NETRUNNER_SHEPHERD_ROOT`); `net_runner_proto` does the same. Two ways
//! to build from there:
//!
//! - a source checkout (this workspace, a git dependency): the nested cargo
//!   builds the shepherd package in place, with that workspace's lock file;
//! - a package (crates.io, a vendor directory, an unpacked `.crate` under
//!   `[patch]`; recognised by the `Cargo.toml.orig` that `cargo package`
//!   writes): the nested cargo builds a generated wrapper package in the
//!   shepherd's target dir that depends on those two directories by path,
//!   `--offline`: every dependency is already in the outer build's graph,
//!   hence downloaded. Nothing is written next to the sources.
//!
//! See docs/decisions.md ("Packaging").

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(netrunner_no_embed)");
    println!("cargo:rerun-if-env-changed=NETRUNNER_NO_EMBED");
    println!("cargo:rerun-if-env-changed=DOCS_RS");

    if env::var_os("NETRUNNER_NO_EMBED").is_some() {
        println!(
            "cargo:warning=net_runner: shepherd not embedded; set NETRUNNER_SHEPHERD at run time"
        );
        println!("cargo:rustc-cfg=netrunner_no_embed");
        return;
    }
    // docs.rs builds without network and only needs the docs: skip the
    // nested build (the binary changes nothing in the documentation).
    if env::var_os("DOCS_RS").is_some() {
        println!("cargo:rustc-cfg=netrunner_no_embed");
        return;
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let shepherd_dir = dependency_dir("DEP_NETRUNNER_SHEPHERD_ROOT", &manifest_dir, "shepherd");
    let proto_dir = dependency_dir("DEP_NET_RUNNER_PROTO_ROOT", &manifest_dir, "proto");
    for dir in [&shepherd_dir, &proto_dir] {
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/[<triple>/]<profile>/build/net_runner-<hash>/out:
    // share one shepherd build between profiles (check, test, release), each
    // of which would otherwise rebuild it. Cargo's lock on that directory
    // serialises concurrent builds.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("netrunner-shepherd"))
        .unwrap_or_else(|| out_dir.join("shepherd-target"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = env::var("TARGET").unwrap();

    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--bin",
        "netrunner-shepherd",
        "--target",
        &target,
    ]);
    if shepherd_dir.join("Cargo.toml.orig").exists() {
        let wrapper = write_wrapper(&target_dir.join("packaged"), &shepherd_dir, &proto_dir);
        cmd.args(["--offline", "--package", "netrunner-shepherd"])
            .arg("--manifest-path")
            .arg(wrapper.join("Cargo.toml"))
            // Cargo configuration is looked up from here: with the default
            // target dir that is the user's project, so its source
            // replacement (vendoring) or linker settings apply.
            .current_dir(&wrapper);
        if let Some(linker) = env::var_os("RUSTC_LINKER") {
            let key = format!(
                "CARGO_TARGET_{}_LINKER",
                target.to_uppercase().replace(['-', '.'], "_")
            );
            if env::var_os(&key).is_none() {
                cmd.env(key, linker);
            }
        }
    } else {
        cmd.arg("--manifest-path")
            .arg(shepherd_dir.join("Cargo.toml"));
    }
    let status = cmd
        .arg("--target-dir")
        .arg(&target_dir)
        // A small, self-contained binary: it is exec'd once per command, so
        // no dynamic loader work, no debug info, no unwinding tables.
        .args([
            "--config",
            "profile.release.strip=true",
            "--config",
            "profile.release.debug=0",
            "--config",
            "profile.release.panic='abort'",
            "--config",
            "profile.release.lto=true",
            "--config",
            "profile.release.codegen-units=1",
        ])
        // The outer build's flags (sanitizers, coverage) are not the
        // shepherd's; static glibc is fine: it uses no NSS or dlopen.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("net_runner build.rs: cannot run cargo to build the shepherd");
    assert!(
        status.success(),
        "net_runner build.rs: building the shepherd from {} failed (see the output \
         above; NETRUNNER_NO_EMBED=1 builds without it, then NETRUNNER_SHEPHERD \
         must name a shepherd binary at run time)",
        shepherd_dir.display()
    );
    let bin = target_dir
        .join(&target)
        .join("release")
        .join("netrunner-shepherd");
    assert!(
        bin.is_file(),
        "net_runner build.rs: the shepherd build succeeded but {} is missing",
        bin.display()
    );
    println!(
        "cargo:rustc-env=NETRUNNER_EMBEDDED_SHEPHERD={}",
        bin.display()
    );
    // Names the on-disk copy (shepherd_exe.rs) without hashing 1 MB at
    // run time.
    let bytes = std::fs::read(&bin).expect("net_runner build.rs: cannot read the shepherd");
    let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    println!("cargo:rustc-env=NETRUNNER_EMBEDDED_SHEPHERD_HASH={sum:016x}");
}

/// The source directory a `links` dependency reported, or its sibling in
/// this repository's layout. Missing both is a broken build, not a reason
/// to ship a library whose every command fails: stop here.
fn dependency_dir(var: &str, manifest_dir: &Path, sibling: &str) -> PathBuf {
    if let Some(dir) = env::var_os(var) {
        return PathBuf::from(dir);
    }
    let dir = manifest_dir.join("..").join(sibling);
    assert!(
        dir.join("Cargo.toml").is_file(),
        "net_runner build.rs: {var} is not set and {} does not exist, so the \
         shepherd cannot be built (NETRUNNER_NO_EMBED=1 builds without it)",
        dir.display()
    );
    dir
}

/// Writes the wrapper package that builds the packaged shepherd, and returns
/// its directory. Files are only rewritten when their content changes, so
/// the nested build stays fresh across profiles.
fn write_wrapper(dir: &Path, shepherd_dir: &Path, proto_dir: &Path) -> PathBuf {
    let manifest = format!(
        "# Generated by net_runner's build script: builds the netrunner-shepherd\n\
         # binary from the package sources the outer build uses.\n\
         [package]\n\
         name = \"netrunner-shepherd-build\"\n\
         version = \"0.0.0\"\n\
         edition = \"2021\"\n\
         publish = false\n\n\
         [lib]\n\
         path = \"lib.rs\"\n\n\
         [dependencies]\n\
         netrunner-shepherd = {{ path = {} }}\n\n\
         # The shepherd must speak the protocol of the copy the library uses.\n\
         [patch.crates-io]\n\
         net_runner_proto = {{ path = {} }}\n\n\
         [workspace]\n",
        toml_string(shepherd_dir),
        toml_string(proto_dir),
    );
    fs::create_dir_all(dir).expect("net_runner build.rs: cannot create the shepherd wrapper dir");
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    write_if_changed(&dir.join("lib.rs"), "");
    dir.to_path_buf()
}

fn write_if_changed(path: &Path, content: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == content) {
        return;
    }
    // Rename over the old file, so that a concurrent reader never sees half.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, content)
        .and_then(|()| fs::rename(&tmp, path))
        .unwrap_or_else(|e| panic!("net_runner build.rs: cannot write {}: {e}", path.display()));
}

fn toml_string(path: &Path) -> String {
    let s = path
        .to_str()
        .unwrap_or_else(|| panic!("net_runner build.rs: non-UTF-8 path {}", path.display()));
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
