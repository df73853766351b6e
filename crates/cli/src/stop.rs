//! `--stop-sequence SPEC` and `--signal SIG`.
//!
//! SPEC is a comma-separated list of steps, run in order; each is
//! `ACTION[:WAIT]`, where ACTION is a signal (`TERM`, `SIGTERM`, `15`) or
//! `close-stdin`, and WAIT a duration (how long to wait before the next
//! step; the --kill-timeout when omitted). A final `KILL` may be written
//! and is implicit anyway: whatever is left after the last wait gets
//! SIGKILL. Example: `close-stdin:1s,INT:2s,TERM:5s,KILL`.

use std::time::Duration;

use net_runner::{Signal, StopSequence};

/// One parsed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopStep {
    /// Send a signal, then wait (`None`: the kill timeout).
    Signal(Signal, Option<Duration>),
    /// Close the program's stdin, then wait.
    CloseStdin(Option<Duration>),
}

/// A parsed `--stop-sequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopSpec(pub Vec<StopStep>);

/// Parses a signal name (`TERM`, `SIGTERM`, any case) or number.
pub(crate) fn parse_signal(text: &str) -> Result<Signal, String> {
    text.parse::<Signal>().map_err(|_| {
        format!("unknown signal {text:?} (use a name such as TERM or INT, or a number)")
    })
}

/// Parses SPEC (see the module documentation).
pub(crate) fn parse_spec(text: &str) -> Result<StopSpec, String> {
    let mut steps = Vec::new();
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    for (i, part) in parts.iter().enumerate() {
        let (action, wait) = match part.split_once(':') {
            Some((a, w)) => (a, Some(crate::duration::parse(w)?)),
            None => (*part, None),
        };
        if action.is_empty() {
            return Err(format!("invalid stop sequence {text:?}: empty step"));
        }
        let last = i + 1 == parts.len();
        if action.eq_ignore_ascii_case("close-stdin") {
            steps.push(StopStep::CloseStdin(wait));
            continue;
        }
        let signal = parse_signal(action)?;
        if signal == Signal::Kill {
            if !last || wait.is_some() {
                return Err(format!(
                    "invalid stop sequence {text:?}: KILL ends the sequence (last, no wait)"
                ));
            }
            continue; // implicit
        }
        steps.push(StopStep::Signal(signal, wait));
    }
    if steps.is_empty() {
        return Err(format!(
            "invalid stop sequence {text:?}: no step before KILL"
        ));
    }
    Ok(StopSpec(steps))
}

impl StopSpec {
    /// The library's sequence.
    pub(crate) fn to_sequence(&self) -> StopSequence {
        self.0
            .iter()
            .fold(StopSequence::new(), |seq, step| match *step {
                StopStep::Signal(sig, Some(wait)) => seq.signal(sig, wait),
                StopStep::Signal(sig, None) => seq.signal_then_kill_timeout(sig),
                StopStep::CloseStdin(wait) => seq.close_stdin(wait.unwrap_or(Duration::ZERO)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = parse_spec("close-stdin:1s,INT:2s,SIGTERM:5s,KILL").unwrap();
        assert_eq!(
            s.0,
            [
                StopStep::CloseStdin(Some(Duration::from_secs(1))),
                StopStep::Signal(Signal::Int, Some(Duration::from_secs(2))),
                StopStep::Signal(Signal::Term, Some(Duration::from_secs(5))),
            ]
        );
        assert_eq!(
            parse_spec("15").unwrap().0,
            [StopStep::Signal(Signal::Term, None)]
        );
        assert_eq!(s.to_sequence().len(), 3);
        for bad in [
            "",
            "KILL",
            "TERM,KILL:1s",
            "KILL,TERM",
            "NOPE:1s",
            "TERM:3x",
            "TERM,,INT",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        for (text, sig) in [
            ("TERM", Signal::Term),
            ("sigint", Signal::Int),
            ("9", Signal::Kill),
        ] {
            assert_eq!(parse_signal(text).unwrap(), sig);
        }
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("FOO").is_err());
    }
}
