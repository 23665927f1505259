//! The node (`aether serve`) end to end: real `aether serve` processes on
//! random loopback ports and the real router in-process, on the embedded
//! store in temporary directories, with components built from this
//! repository.

mod bad_input;
mod cli_client;
mod connections;
mod events;
mod full_disk;
mod http;
mod jetstream;
mod limits;
mod noisy;
mod quotas;
mod reload;
mod shutdown;
mod storage;
mod support;
mod tenancy;
mod tokens;
mod uploads;
mod watch;
