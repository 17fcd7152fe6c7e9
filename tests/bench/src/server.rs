//! The simulated tenant, in a process of its own so that a sync's CPU time and memory are
//! measured without the simulator's. It prints where it listens as one JSON line, then
//! takes commands on stdin: `change N` (N users changed: 40 % updated, 30 % created,
//! 30 % deleted, as a day's churn), `requests` (requests served so far), `quit`.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

/// Where the simulator listens, and its app's credentials (a fixture).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    pub login: String,
    pub graph: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where usage reports are downloaded from (their redirects' host).
    pub download: String,
    pub users: u64,
}

/// The roles the bench's syncs need: users and licences, and for the every-data-set run
/// managers, sign-in activity, groups, the organization and its domains, mailboxes and
/// usage reports.
pub const ROLES: [&str; 6] = [
    "User.Read.All",
    "Organization.Read.All",
    "AuditLog.Read.All",
    "GroupMember.Read.All",
    "Domain.Read.All",
    "Reports.Read.All",
];

pub async fn serve(users: usize) -> anyhow::Result<()> {
    let mut config = SimConfig::new(TenantSpec::new(42, users));
    config.roles = ROLES.iter().map(|r| r.to_string()).collect();
    let sim = Simulator::start(config).await?;
    let creds = sim.credentials();
    let endpoints = Endpoints {
        login: sim.login_url(),
        graph: sim.graph_url(),
        tenant_id: creds.tenant_id,
        client_id: creds.client_id,
        client_secret: creds.client_secret,
        download: sim.download_url(),
        users: users as u64,
    };
    println!("{}", serde_json::to_string(&endpoints)?);
    // Commands are read one at a time on a thread of their own.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("change"), Some(n)) => {
                let n: usize = n.parse()?;
                churn(&sim, n);
                println!("ok");
            }
            (Some("requests"), None) => println!("{}", sim.request_count()),
            (Some("quit"), None) | (None, _) => break,
            _ => anyhow::bail!("unknown command {line:?}"),
        }
    }
    sim.shutdown().await;
    Ok(())
}

/// Changes `n` users: updates, creates and deletes.
fn churn(sim: &Simulator, n: usize) {
    let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    let updates = n * 4 / 10;
    let deletes = n * 3 / 10;
    let creates = n - updates - deletes;
    sim.update_users(&ids[..updates], |u| {
        u.job_title = Some(format!(
            "{} (changed)",
            u.job_title.as_deref().unwrap_or("")
        ))
    });
    sim.delete_users(&ids[ids.len() - deletes..], false);
    sim.create_users(creates);
}
