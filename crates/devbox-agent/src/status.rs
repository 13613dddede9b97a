//! How the agent reads a wait status: in words for the console, and as the
//! shell-style exit code the runtime records (128 + n for signal n).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// "exited with status N" or "was killed by signal N", from a raw wait status.
pub fn describe(raw: i32) -> String {
    let status = ExitStatus::from_raw(raw);
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        format!("was killed by signal {sig}")
    } else {
        format!("ended with wait status {raw:#x}")
    }
}

/// The exit code a shell would report, and the signal that ended the process
/// if one did.
pub fn shell_code(raw: i32) -> (i32, Option<i32>) {
    let status = ExitStatus::from_raw(raw);
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        // Stopped or continued: not an end; callers only pass ends.
        (None, None) => (128, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_naturally() {
        // Wait statuses as the kernel encodes them: exit code in bits 8..16,
        // terminating signal in the low seven bits.
        assert_eq!(describe(3 << 8), "exited with status 3");
        assert_eq!(describe(0), "exited with status 0");
        assert_eq!(describe(9), "was killed by signal 9");
    }

    #[test]
    fn signals_become_128_plus_their_number() {
        assert_eq!(shell_code(3 << 8), (3, None));
        assert_eq!(shell_code(0), (0, None));
        assert_eq!(shell_code(9), (137, Some(9)));
        // A core dump sets bit 7; the signal is still 11.
        assert_eq!(shell_code(11 | 0x80), (139, Some(11)));
    }
}
