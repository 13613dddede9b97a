//! Environment variables given to a devbox (`--env KEY=VALUE`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One `KEY=VALUE` pair with a POSIX-portable key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

/// The variable was not `KEY=VALUE` with a valid key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid environment variable {0:?}: expected KEY=VALUE where KEY is letters, digits and '_', not starting with a digit"
)]
pub struct EnvError(pub String);

impl FromStr for EnvVar {
    type Err = EnvError;
    fn from_str(s: &str) -> Result<Self, EnvError> {
        let (key, value) = s.split_once('=').ok_or_else(|| EnvError(s.to_owned()))?;
        let kb = key.as_bytes();
        let valid = !kb.is_empty()
            && kb.len() <= 256
            && !kb[0].is_ascii_digit()
            && kb.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            && !value.contains('\0');
        if !valid {
            return Err(EnvError(s.to_owned()));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl TryFrom<String> for EnvVar {
    type Error = EnvError;
    fn try_from(s: String) -> Result<Self, EnvError> {
        s.parse()
    }
}

impl From<EnvVar> for String {
    fn from(e: EnvVar) -> String {
        e.to_string()
    }
}

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_parse() {
        let v: EnvVar = "FOO=bar=baz".parse().unwrap();
        assert_eq!((v.key.as_str(), v.value.as_str()), ("FOO", "bar=baz"));
        assert!("EMPTY=".parse::<EnvVar>().is_ok());
        for bad in ["FOO", "=x", "1A=x", "A-B=x", "A B=x", "A=\0"] {
            assert!(bad.parse::<EnvVar>().is_err(), "{bad}");
        }
    }
}
