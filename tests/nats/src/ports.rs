//! Free loopback ports, picked by binding port 0 and letting go.
//!
//! Another process may take a port between its release here and the
//! server's bind; the callers notice (the server exits with "address already
//! in use") and start again on new ports. Within one test process no port is
//! handed out twice, so parallel tests never pick each other's.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `count` distinct free ports on 127.0.0.1, none handed out before by this
/// process.
pub(crate) fn pick(count: usize) -> Vec<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // Every listener stays bound until all are picked, so the OS gives a
    // different port each time.
    let mut listeners = Vec::new();
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        assert!(
            listeners.len() < count + 1000,
            "could not find {count} free loopback ports"
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding a free port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("reading a bound listener's port: {e}"))
            .port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    ports
}
