//! `aether cluster status`: the operator's view of a cluster, from any node.

use anyhow::Result;
use serde_json::Value;

use super::client::{Client, Connection};

/// What to ask the cluster.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// Members, the leader, the shard map's epoch and shards per node, as
    /// the node asked sees them (admin token).
    Status {
        #[command(flatten)]
        connection: Connection,
        /// Print the node's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

/// `aether cluster …`
pub(crate) fn run(args: ClusterArgs) -> Result<()> {
    let ClusterCommand::Status { connection, json } = args.command;
    let status = Client::new(&connection).get("/v1/cluster")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print!("{}", render(&status));
    Ok(())
}

/// The status for people.
fn render(status: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("none").to_owned();
    let mut out = format!(
        "node {} · leader {} · epoch {} · {} shards\n",
        text(&status["node_id"]),
        text(&status["leader"]),
        status["epoch"],
        status["shards"]
    );
    out.push_str("members:\n");
    for member in status["members"].as_array().into_iter().flatten() {
        let id = text(&member["node_id"]);
        let owned = status["shards_per_node"][&id].as_u64().unwrap_or(0);
        let leader = if status["leader"] == member["node_id"] {
            "  (leader)"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {id:<16} {:<28} {owned:>5} shards{leader}\n",
            text(&member["api"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn status_lists_members_with_their_shards_and_the_leader() {
        let status = json!({
            "node_id": "n1", "leader": "n2", "epoch": 4, "shards": 256,
            "members": [
                {"node_id": "n1", "api": "http://127.0.0.1:1"},
                {"node_id": "n2", "api": "http://127.0.0.1:2"}
            ],
            "shards_per_node": {"n1": 120, "n2": 136}
        });
        let text = super::render(&status);
        assert!(
            text.starts_with("node n1 · leader n2 · epoch 4 · 256 shards\n"),
            "{text}"
        );
        assert!(
            text.contains("n1               http://127.0.0.1:1             120 shards\n"),
            "{text}"
        );
        assert!(text.contains("136 shards  (leader)"), "{text}");
    }
}
