//! The `netrunner-shepherd` binary, which the `net_runner` library embeds
//! and execs once per command (unless it forked its shepherd): everything
//! is in the library target.

fn main() {
    netrunner_shepherd::main()
}
