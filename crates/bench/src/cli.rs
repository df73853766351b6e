//! Section 7: the CLI's cost per command: `netrunner run -- true` against
//! `timeout 5 true`, side by side (each a whole process started from here,
//! stdio on /dev/null), one run of each per round.

use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::{ensure, interleave, Contender, Res};
use crate::report::{time_ratio, Report};
use crate::Ctx;

const TEST: &str = "7. CLI: one command `true` (time; lower is better)";

pub(crate) fn run(ctx: &Ctx, rep: &mut Report) -> Res<()> {
    let Ok(cli) = &ctx.cli else {
        return Ok(());
    };
    let timeout = crate::sys::which("timeout")?;
    let t = &ctx.bin_true;
    let once = |cmd: &mut Command| -> Res<std::time::Duration> {
        let s = Instant::now();
        let st = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let d = s.elapsed();
        ensure(st.success(), || format!("{cmd:?} failed"))?;
        Ok(d)
    };
    let mut cs = vec![
        Contender::new("timeout 5 true", || {
            once(Command::new(&timeout).arg("5").arg(t))
        }),
        Contender::new("netrunner run -- true", || {
            once(Command::new(cli).args(["run", "--"]).arg(t))
        }),
        Contender::new("netrunner timeout 5 true", || {
            once(Command::new(cli).args(["timeout", "5"]).arg(t))
        }),
    ];
    let s = interleave(&mut cs, ctx.cfg.warmup_spawns, ctx.cfg.spawns / 5)?;
    let test = format!("{TEST}, n={}", s[0].len());
    for (i, x) in s.iter().enumerate() {
        let ratio = match i {
            0 => "1.00× (baseline)".to_string(),
            _ => time_ratio(x, &s[0], "timeout(1)"),
        };
        rep.time_row(&test, cs[i].name, x, None, ratio);
    }
    rep.metric("cli.timeout", s[0].median().as_secs_f64());
    rep.metric("cli.netrunner", s[1].median().as_secs_f64());
    Ok(())
}
