// The methods of the tallies in `tally-v01` and `tally-v02` that their WIT
// versions share (`handle`, `snapshot`, `restore`, `view`), written once.
// Each crate `include!`s this file and invokes the macro inside its
// `impl GuestAggregate`, where the names resolve to its own bindings.

/// `handle`: `Deposit` (`{"amount": n}`) decides one `Deposited`; the
/// snapshot and the view are the balance.
macro_rules! tally_methods {
    () => {
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
