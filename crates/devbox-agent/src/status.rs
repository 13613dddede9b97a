//! How the agent reports the end of the startup command.

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
}
