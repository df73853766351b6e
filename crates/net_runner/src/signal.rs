//! POSIX signals by name or number.

use std::fmt;
use std::str::FromStr;

use crate::Error;

macro_rules! signals {
    ($($variant:ident = $libc:ident, $name:literal;)*) => {
        /// A standard POSIX signal (Linux numbering).
        ///
        /// Parse one from its name, with or without the `SIG` prefix and in any
        /// case, or from its number:
        ///
        /// ```
        /// use net_runner::Signal;
        /// assert_eq!("SIGTERM".parse::<Signal>().unwrap(), Signal::Term);
        /// assert_eq!("term".parse::<Signal>().unwrap(), Signal::Term);
        /// assert_eq!("9".parse::<Signal>().unwrap(), Signal::Kill);
        /// assert_eq!(Signal::try_from(2).unwrap(), Signal::Int);
        /// assert_eq!(Signal::Hup.as_raw(), 1);
        /// assert!("SIGNOPE".parse::<Signal>().is_err());
        /// assert!(Signal::try_from(99).is_err());
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Signal {
            $(
                #[doc = concat!("`SIG", $name, "`")]
                $variant,
            )*
        }

        impl Signal {
            /// Every signal this type knows, in number order.
            ///
            /// ```
            /// use net_runner::Signal;
            /// assert_eq!(Signal::ALL[0], Signal::Hup);
            /// assert!(Signal::ALL.contains(&Signal::Term));
            /// ```
            pub const ALL: &'static [Signal] = &[$(Signal::$variant),*];

            /// The signal number.
            ///
            /// ```
            /// assert_eq!(net_runner::Signal::Kill.as_raw(), 9);
            /// ```
            pub fn as_raw(self) -> i32 {
                match self { $(Signal::$variant => libc::$libc,)* }
            }

            /// The name without the `SIG` prefix, e.g. `"TERM"`.
            ///
            /// ```
            /// assert_eq!(net_runner::Signal::Term.name(), "TERM");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $(Signal::$variant => $name,)* }
            }
        }
    };
}

signals! {
    Hup = SIGHUP, "HUP";
    Int = SIGINT, "INT";
    Quit = SIGQUIT, "QUIT";
    Ill = SIGILL, "ILL";
    Trap = SIGTRAP, "TRAP";
    Abrt = SIGABRT, "ABRT";
    Bus = SIGBUS, "BUS";
    Fpe = SIGFPE, "FPE";
    Kill = SIGKILL, "KILL";
    Usr1 = SIGUSR1, "USR1";
    Segv = SIGSEGV, "SEGV";
    Usr2 = SIGUSR2, "USR2";
    Pipe = SIGPIPE, "PIPE";
    Alrm = SIGALRM, "ALRM";
    Term = SIGTERM, "TERM";
    Stkflt = SIGSTKFLT, "STKFLT";
    Chld = SIGCHLD, "CHLD";
    Cont = SIGCONT, "CONT";
    Stop = SIGSTOP, "STOP";
    Tstp = SIGTSTP, "TSTP";
    Ttin = SIGTTIN, "TTIN";
    Ttou = SIGTTOU, "TTOU";
    Urg = SIGURG, "URG";
    Xcpu = SIGXCPU, "XCPU";
    Xfsz = SIGXFSZ, "XFSZ";
    Vtalrm = SIGVTALRM, "VTALRM";
    Prof = SIGPROF, "PROF";
    Winch = SIGWINCH, "WINCH";
    Io = SIGIO, "IO";
    Pwr = SIGPWR, "PWR";
    Sys = SIGSYS, "SYS";
}

impl Signal {
    /// Looks a signal up by name: `"SIGTERM"`, `"TERM"`, `"term"`; also the
    /// aliases `IOT` (ABRT), `POLL` (IO), `CLD` (CHLD).
    ///
    /// ```
    /// assert_eq!(net_runner::Signal::from_name("sigkill"), Some(net_runner::Signal::Kill));
    /// ```
    pub fn from_name(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        match bare {
            "IOT" => return Some(Signal::Abrt),
            "POLL" => return Some(Signal::Io),
            "CLD" => return Some(Signal::Chld),
            _ => {}
        }
        Signal::ALL.iter().copied().find(|s| s.name() == bare)
    }
}

impl TryFrom<i32> for Signal {
    type Error = Error;
    fn try_from(n: i32) -> Result<Self, Error> {
        Signal::ALL
            .iter()
            .copied()
            .find(|s| s.as_raw() == n)
            .ok_or_else(|| Error::InvalidSignal(n.to_string()))
    }
}

impl FromStr for Signal {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Ok(n) = s.trim().parse::<i32>() {
            return Signal::try_from(n);
        }
        Signal::from_name(s).ok_or_else(|| Error::InvalidSignal(s.to_string()))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_round_trips_by_name_and_number() {
        for &s in Signal::ALL {
            assert_eq!(Signal::try_from(s.as_raw()).unwrap(), s);
            assert_eq!(s.to_string().parse::<Signal>().unwrap(), s);
            assert_eq!(s.name().to_lowercase().parse::<Signal>().unwrap(), s);
        }
        assert_eq!(Signal::ALL.len(), 31);
    }

    #[test]
    fn bad_signals_are_errors() {
        for bad in ["0", "-1", "99", "", "SIG", "TERMX"] {
            assert!(
                matches!(bad.parse::<Signal>(), Err(Error::InvalidSignal(_))),
                "{bad}"
            );
        }
    }
}
