//! Builds the shepherd binary (in release, with its own target dir) so that
//! the library can embed it: a user who adds `net_runner` installs nothing
//! else and downloads nothing at run time.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let shepherd_dir = manifest_dir.join("../shepherd");
    let proto_dir = manifest_dir.join("../proto");
    for dir in [&shepherd_dir, &proto_dir] {
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }
    println!("cargo:rerun-if-env-changed=NETRUNNER_NO_EMBED");

    let shepherd_manifest = shepherd_dir.join("Cargo.toml");
    if !shepherd_manifest.exists() || env::var_os("NETRUNNER_NO_EMBED").is_some() {
        println!(
            "cargo:warning=net_runner: shepherd not embedded; set NETRUNNER_SHEPHERD at run time"
        );
        println!("cargo:rustc-cfg=netrunner_no_embed");
        println!("cargo:rustc-check-cfg=cfg(netrunner_no_embed)");
        return;
    }
    println!("cargo:rustc-check-cfg=cfg(netrunner_no_embed)");

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
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "netrunner-shepherd",
            "--target",
            &target,
        ])
        .arg("--manifest-path")
        .arg(&shepherd_manifest)
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
        "net_runner build.rs: building the shepherd failed"
    );
    let bin = target_dir
        .join(&target)
        .join("release")
        .join("netrunner-shepherd");
    println!(
        "cargo:rustc-env=NETRUNNER_EMBEDDED_SHEPHERD={}",
        bin.display()
    );
}
