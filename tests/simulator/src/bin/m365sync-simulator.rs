//! `m365sync-simulator`: runs the simulator by hand. It prints the login URL,
//! the Graph URL and the test credentials (a fixture, so printing the secret is
//! intended here), then serves until Ctrl-C.

use std::time::Duration;

use clap::Parser;
use m365sync_simulator::{
    Cloud, SimConfig, Simulator, TenantSpec, sample_delegated_admin_relationships,
};

/// A local Microsoft identity platform token endpoint and Microsoft Graph v1.0
/// serving a generated tenant.
#[derive(Debug, Parser)]
#[command(name = "m365sync-simulator", version)]
struct Args {
    /// Number of users in the generated tenant.
    #[arg(long, default_value_t = 2500)]
    users: usize,
    /// Seed: the same seed and size always give the same tenant.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Delay added to every Graph request, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Application roles in issued tokens, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "User.Read.All")]
    roles: Vec<String>,
    /// Make the token endpoint answer AADSTS7000222 (expired client secret).
    #[arg(long)]
    secret_expired: bool,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_lifetime_secs: u64,
    /// Simulate a tenant without Microsoft Entra ID P1/P2 (signInActivity is
    /// refused).
    #[arg(long)]
    no_premium: bool,
    /// Conceal user names in usage reports.
    #[arg(long)]
    concealed_reports: bool,
    /// The tenant's Microsoft cloud: tokens are issued for its Graph resource
    /// only.
    #[arg(long, default_value = "global", value_parser = ["global", "us-gov", "us-gov-dod", "china"])]
    cloud: String,
    /// Replays of users/delta carry only the changed properties of updated
    /// users, as if `Prefer: return=minimal` had been sent.
    #[arg(long)]
    minimal_updates: bool,
    /// A PEM certificate to register on the app (repeatable): client
    /// assertions signed with its key authenticate the app.
    #[arg(long = "certificate", value_name = "PEM_FILE")]
    certificates: Vec<std::path::PathBuf>,
    /// Register no client secret: only certificates authenticate the app.
    #[arg(long)]
    no_secret: bool,
    /// Start without the administrator's consent: the token endpoint answers
    /// AADSTS700016 until the admin consent endpoint is used.
    #[arg(long)]
    not_consented: bool,
    /// Serve this many generated delegated admin relationships (GDAP).
    #[arg(long, default_value_t = 0)]
    partner_customers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = SimConfig::new(TenantSpec::new(args.seed, args.users));
    config.latency = args.latency_ms.map(Duration::from_millis);
    config.roles = args
        .roles
        .into_iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    config.secret_expired = args.secret_expired;
    config.token_lifetime_secs = args.token_lifetime_secs;
    config.premium = !args.no_premium;
    config.concealed_reports = args.concealed_reports;
    config.cloud = match args.cloud.as_str() {
        "us-gov" => Cloud::UsGov,
        "us-gov-dod" => Cloud::UsGovDod,
        "china" => Cloud::China,
        _ => Cloud::Global,
    };
    config.minimal_updates = args.minimal_updates;
    for path in &args.certificates {
        config.certificates.push(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
    }
    config.secret_registered = !args.no_secret;
    config.consented = !args.not_consented;
    let seed = args.seed;
    let partner_customers = args.partner_customers;
    let cloud = config.cloud;
    let sim = Simulator::start(config).await?;
    let creds = sim.credentials();
    if partner_customers > 0 {
        sim.set_delegated_admin_relationships(sample_delegated_admin_relationships(
            &creds.tenant_id,
            seed,
            partner_customers,
        ));
    }
    let tenant = sim.tenant();
    println!(
        "tenant:        {} ({} users, {} groups)",
        tenant.name,
        tenant.users.len(),
        tenant.groups.len()
    );
    println!("login url:     {}", sim.login_url());
    println!("graph url:     {}", sim.graph_url());
    println!("download url:  {}", sim.download_url());
    println!("token url:     {}", sim.token_url());
    println!("tenant id:     {}", creds.tenant_id);
    println!("client id:     {}", creds.client_id);
    println!("client secret: {}", creds.client_secret);
    println!("scope:         {}/.default", cloud.graph_resource());
    println!("admin consent: {}", sim.admin_consent_url());
    println!("Serving until Ctrl-C.");
    tokio::signal::ctrl_c().await?;
    println!("Stopping ({} requests served).", sim.request_count());
    sim.shutdown().await;
    Ok(())
}
