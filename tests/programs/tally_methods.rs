// The methods of the tallies in `tally-v01` to `tally-v04` that their WIT
// versions share, written once. Each crate `include!`s this file and
// invokes the macros inside its `impl GuestAggregate`, where the names
// resolve to its own bindings: `tally_methods!` (0.1.0 and 0.2.0: `handle`
// and the state's methods) or `tally_state_methods!` alone.

/// A deposit's data: `{"amount": n}`.
#[derive(serde::Deserialize)]
struct Amount {
    amount: u64,
}

/// Every tally's state: the sum of its deposits.
struct Tally {
    balance: std::cell::Cell<u64>,
}

/// Appends one JSON event to a batch, in the layout of `apply`'s batch
/// (the tallies on 0.3.0 and later write the events they decide so).
#[allow(dead_code)]
fn push(batch: &mut Vec<u8>, (version, timestamp_ms): (u64, u64), event_type: &str, data: &[u8]) {
    const JSON: &str = "application/json";
    batch.extend_from_slice(&version.to_le_bytes());
    batch.extend_from_slice(&timestamp_ms.to_le_bytes());
    for len in [event_type.len(), JSON.len(), data.len()] {
        batch.extend_from_slice(&(len as u32).to_le_bytes());
    }
    batch.extend_from_slice(event_type.as_bytes());
    batch.extend_from_slice(JSON.as_bytes());
    batch.extend_from_slice(data);
}

/// `handle`: `Deposit` (`{"amount": n}`) decides one `Deposited`; the
/// snapshot and the view are the balance.
#[allow(unused_macros)]
macro_rules! tally_methods {
    () => {
        tally_state_methods!();

        fn handle(&self, command: Command) -> Result<Vec<NewEvent>, Rejection> {
            let rejection = |code: &str, message: String| Rejection {
                code: code.into(),
                message,
            };
            if command.command_type != "Deposit" {
                return Err(rejection(
                    "malformed-command",
                    format!("unknown type \"{}\"", command.command_type),
                ));
            }
            let Amount { amount } = serde_json::from_slice(&command.data)
                .map_err(|e| rejection("malformed-command", e.to_string()))?;
            Ok(vec![NewEvent {
                event_type: "Deposited".into(),
                content_type: "application/json".into(),
                data: format!("{{\"amount\":{amount}}}").into_bytes(),
            }])
        }
    };
}

/// `snapshot`, `restore` and `view`: the balance.
#[allow(unused_macros)]
macro_rules! tally_state_methods {
    () => {
        fn snapshot(&self) -> Vec<u8> {
            self.balance.get().to_string().into_bytes()
        }

        fn restore(&self, state: Vec<u8>) -> Result<(), String> {
            let balance = std::str::from_utf8(&state)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("not a balance")?;
            self.balance.set(balance);
            Ok(())
        }

        fn view(&self) -> String {
            format!("{{\"balance\":{}}}", self.balance.get())
        }
    };
}

/// One event of a batch: (version, type, content type, data).
#[allow(dead_code)]
type Stored<'a> = (u64, &'a [u8], &'a [u8], &'a [u8]);

/// The events of a batch, in order (the host guarantees the layout; a
/// batch that breaks it ends the iteration with `None` in the item). Used
/// by the tallies on 0.2.0 and later.
#[allow(dead_code)]
fn events(mut batch: &[u8]) -> impl Iterator<Item = Option<Stored<'_>>> {
    std::iter::from_fn(move || {
        if batch.is_empty() {
            return None;
        }
        let event = (|| {
            let header = batch.get(..28)?;
            let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
            let version = u64::from_le_bytes(header[..8].try_into().unwrap());
            let lens = [u32_at(16), u32_at(20), u32_at(24)].map(|n| n as usize);
            let end = 28 + lens.iter().sum::<usize>();
            let body = batch.get(28..end)?;
            let (event_type, rest) = body.split_at(lens[0]);
            let (content_type, data) = rest.split_at(lens[1]);
            batch = &batch[end..];
            Some((version, event_type, content_type, data))
        })();
        if event.is_none() {
            batch = &[];
        }
        Some(event)
    })
}

/// `apply` of 0.2.0 and later (a batch as one buffer): `Opened` (any data)
/// changes nothing, `Deposited` (`{"amount": n}`) adds to the balance; any
/// other type, or other content, is an `apply-error` at its version, after
/// the events before it were applied.
#[allow(unused_macros)]
macro_rules! tally_apply_batch {
    () => {
        fn apply(&self, batch: Vec<u8>) -> Result<(), ApplyError> {
            let mut last = 0;
            for event in events(&batch) {
                let failed = |version: u64, message: String| ApplyError { version, message };
                let Some((version, event_type, content_type, data)) = event else {
                    return Err(failed(last + 1, "malformed batch".into()));
                };
                last = version;
                if content_type != b"application/json" {
                    return Err(failed(version, "unsupported content type".into()));
                }
                match event_type {
                    b"Opened" => {}
                    b"Deposited" => {
                        let Amount { amount } = serde_json::from_slice(data)
                            .map_err(|e| failed(version, format!("invalid Deposited: {e}")))?;
                        self.balance.set(self.balance.get().saturating_add(amount));
                    }
                    other => {
                        let other = String::from_utf8_lossy(other);
                        let message = format!("cannot apply event: unknown type \"{other}\"");
                        return Err(failed(version, message));
                    }
                }
            }
            Ok(())
        }
    };
}
