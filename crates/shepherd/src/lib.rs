//! Nothing to use here: `netrunner-shepherd` is a binary, the per-command
//! watchdog process of the `net_runner` library.
//!
//! This empty library target exists so that `net_runner` can depend on the
//! package: its build script builds the `netrunner-shepherd` binary from this
//! package's sources and embeds it. See the package README.
#![no_std]
