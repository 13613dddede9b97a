//! Reading `stat` fields whose widths differ between architectures, as
//! the plain integer types the rest of the crate uses.

// On x86_64 most of these casts are to the type the field already has.
#![allow(clippy::unnecessary_cast)]

use rustix::fs::Stat;

pub(crate) fn ctime_ns(st: &Stat) -> i64 {
    nanos(st.st_ctime as i64, st.st_ctime_nsec as i64)
}

pub(crate) fn mtime_ns(st: &Stat) -> i64 {
    nanos(st.st_mtime as i64, st.st_mtime_nsec as i64)
}

pub(crate) fn dev(st: &Stat) -> u64 {
    st.st_dev as u64
}

pub(crate) fn ino(st: &Stat) -> u64 {
    st.st_ino as u64
}

pub(crate) fn nlink(st: &Stat) -> u64 {
    st.st_nlink as u64
}

/// The size of a regular file; zero for anything whose size means nothing.
pub(crate) fn size(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}
