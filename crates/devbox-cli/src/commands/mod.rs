//! One module per group of commands; each owns its arguments and turns them
//! into API requests.

pub mod commit;
pub mod devbox;
pub mod diff;
pub mod events;
pub mod exec;
pub mod gc;
pub mod image;
pub mod import;
pub mod key;
pub mod lifecycle;
pub mod logs;
pub mod open;
pub mod port;
pub mod push;
pub mod release;
pub mod server;
pub mod ssh;
pub mod update;
