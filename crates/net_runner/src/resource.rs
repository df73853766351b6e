//! Resource limits for [`Command::rlimit`](crate::Command::rlimit).

use std::fmt;
use std::str::FromStr;

use net_runner_proto::RlimitResource as Wire;

/// "No limit" for [`Command::rlimit`](crate::Command::rlimit)
/// (`RLIM_INFINITY`).
///
/// ```
/// use net_runner::{Command, Resource, RLIM_INFINITY};
/// let out = Command::new("sh")
///     .args(["-c", "ulimit -c"])
///     .rlimit(Resource::Core, RLIM_INFINITY, RLIM_INFINITY)
///     .run_blocking();
/// // Raising the hard limit needs CAP_SYS_RESOURCE: as root it works.
/// if let Ok(out) = out {
///     assert_eq!(out.stdout, b"unlimited\n");
/// }
/// ```
pub const RLIM_INFINITY: u64 = u64::MAX;

macro_rules! resources {
    ($($variant:ident $name:literal $doc:literal,)*) => {
        /// A resource whose use the kernel limits (`RLIMIT_*`, see
        /// `setrlimit(2)`), for [`Command::rlimit`](crate::Command::rlimit).
        ///
        /// Parses from and prints as the name without `RLIMIT_`, in any
        /// case, as `ulimit` and `prlimit` show them.
        ///
        /// ```
        /// use net_runner::Resource;
        /// let r: Resource = "nofile".parse().unwrap();
        /// assert_eq!(r, Resource::Nofile);
        /// assert_eq!(r.to_string(), "NOFILE");
        /// assert!("FILES".parse::<Resource>().is_err());
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Resource {
            $(#[doc = $doc] $variant,)*
        }

        impl Resource {
            /// Every resource.
            ///
            /// ```
            /// assert!(net_runner::Resource::ALL.contains(&net_runner::Resource::As));
            /// ```
            pub const ALL: &'static [Resource] = &[$(Resource::$variant,)*];

            /// The name without `RLIMIT_`: `"NOFILE"`.
            ///
            /// ```
            /// assert_eq!(net_runner::Resource::Cpu.name(), "CPU");
            /// ```
            pub fn name(self) -> &'static str {
                match self {
                    $(Resource::$variant => $name,)*
                }
            }

            pub(crate) fn to_wire(self) -> Wire {
                match self {
                    $(Resource::$variant => Wire::$variant,)*
                }
            }

            pub(crate) fn from_wire(wire: Wire) -> Self {
                match wire {
                    $(Wire::$variant => Resource::$variant,)*
                }
            }
        }
    };
}

resources! {
    Cpu "CPU" "`RLIMIT_CPU`: CPU time in seconds (SIGXCPU at the soft limit, SIGKILL at the hard one).",
    Fsize "FSIZE" "`RLIMIT_FSIZE`: largest file the process may write, bytes.",
    Data "DATA" "`RLIMIT_DATA`: data segment and heap, bytes.",
    Stack "STACK" "`RLIMIT_STACK`: main thread's stack, bytes.",
    Core "CORE" "`RLIMIT_CORE`: core dump size, bytes (0: none).",
    Rss "RSS" "`RLIMIT_RSS`: resident set; ignored by Linux.",
    Nproc "NPROC" "`RLIMIT_NPROC`: processes (threads) of the real user id.",
    Nofile "NOFILE" "`RLIMIT_NOFILE`: one more than the highest descriptor number.",
    Memlock "MEMLOCK" "`RLIMIT_MEMLOCK`: locked memory, bytes.",
    As "AS" "`RLIMIT_AS`: address space, bytes.",
    Locks "LOCKS" "`RLIMIT_LOCKS`: file locks.",
    Sigpending "SIGPENDING" "`RLIMIT_SIGPENDING`: queued signals.",
    Msgqueue "MSGQUEUE" "`RLIMIT_MSGQUEUE`: POSIX message queues, bytes.",
    Nice "NICE" "`RLIMIT_NICE`: ceiling of the nice value, as `20 - limit`.",
    Rtprio "RTPRIO" "`RLIMIT_RTPRIO`: real-time priority ceiling.",
    Rttime "RTTIME" "`RLIMIT_RTTIME`: real-time CPU time without a blocking call, microseconds.",
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`Resource`].
///
/// ```
/// let err = "FILES".parse::<net_runner::Resource>().unwrap_err();
/// assert!(err.to_string().contains("NOFILE"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource {0:?} (one of {names})", names = Resource::ALL.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownResource(pub String);

impl FromStr for Resource {
    type Err = UnknownResource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("RLIMIT_").unwrap_or(s);
        Resource::ALL
            .iter()
            .copied()
            .find(|r| r.name().eq_ignore_ascii_case(bare))
            .ok_or_else(|| UnknownResource(s.to_owned()))
    }
}
