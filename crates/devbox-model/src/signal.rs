//! The signals a client may deliver to a process in a devbox.

use std::fmt;
use std::str::FromStr;

/// A signal an API client may send to an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Winch,
}

impl Signal {
    pub const ALL: [Signal; 8] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Term,
        Signal::Winch,
    ];

    /// The name without `SIG`, as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "HUP",
            Signal::Int => "INT",
            Signal::Quit => "QUIT",
            Signal::Kill => "KILL",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
            Signal::Term => "TERM",
            Signal::Winch => "WINCH",
        }
    }

    /// The signal's number on Linux (the generic numbering that x86-64 and
    /// arm64 share).
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Kill => 9,
            Signal::Usr1 => 10,
            Signal::Usr2 => 12,
            Signal::Term => 15,
            Signal::Winch => 28,
        }
    }

    /// The signal with this number, if it is one of [`Signal::ALL`].
    pub fn from_number(n: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == n)
    }
}

/// The name was not one of [`Signal::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?}: expected one of HUP, INT, QUIT, KILL, USR1, USR2, TERM, WINCH")]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;
    /// Accepts `TERM`, `SIGTERM` and `term`.
    fn from_str(s: &str) -> Result<Self, UnknownSignal> {
        let upper = s.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL
            .into_iter()
            .find(|sig| sig.name() == name)
            .ok_or_else(|| UnknownSignal(s.to_owned()))
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
    fn signals_parse_in_every_spelling() {
        assert_eq!("TERM".parse(), Ok(Signal::Term));
        assert_eq!("SIGINT".parse(), Ok(Signal::Int));
        assert_eq!("winch".parse(), Ok(Signal::Winch));
        assert!("STOP".parse::<Signal>().is_err());
        assert_eq!(Signal::Kill.number(), 9);
        assert_eq!(Signal::Term.number(), 15);
        assert_eq!(Signal::Hup.to_string(), "SIGHUP");
        for s in Signal::ALL {
            assert_eq!(s.name().parse(), Ok(s));
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
        assert_eq!(Signal::from_number(19), None);
    }
}
