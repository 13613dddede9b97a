//! What a devbox listens on: the TCP sockets in `LISTEN` state of its
//! network namespace, read from the kernel's table as its init sees it
//! (`/proc/<pid>/net/tcp` and `tcp6`), without entering the namespace.

use std::collections::BTreeSet;

/// `st` of a listening socket in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// The local ports of the listening sockets in a `/proc/net/tcp` or
/// `tcp6` table, added to `out`. Lines that do not parse are skipped: the
/// table is the kernel's and its columns are fixed.
pub(crate) fn parse_listening(table: &str, out: &mut BTreeSet<u16>) {
    for line in table.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        if state != LISTEN {
            continue;
        }
        if let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        {
            out.insert(port);
        }
    }
}

/// The ports the network namespace of process `pid` listens on.
pub(crate) fn listening(pid: u32) -> std::io::Result<Vec<u16>> {
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(t) => parse_listening(&t, &mut out),
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if table == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_count_once_per_port() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
garbage
";
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
";
        let mut out = BTreeSet::new();
        parse_listening(tcp, &mut out);
        parse_listening(tcp6, &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), [3000, 8080]);
    }
}
