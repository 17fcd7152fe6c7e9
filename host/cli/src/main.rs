//! The `m365sync` binary, the command line over `m365sync-service`: argument parsing and
//! dispatch to one module per command, rendering in report.rs; no SQL and no store
//! construction of its own.
//! Library errors become `anyhow` errors here, at the edge, and exit codes: 0 success,
//! 1 a run failed (or was refused: another process is syncing the tenant), 2 bad arguments
//! or config, 130/143 a sync stopped by SIGINT/SIGTERM.

/// `print!` to stdout that does not panic when the reader has gone (`| head`): output to a
/// closed pipe is dropped.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `println!` to stdout that does not panic when the reader has gone (see `out!`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod changes;
mod connect;
mod credentials;
#[cfg(feature = "demo")]
mod demo;
mod export;
mod licences;
mod logs;
mod organizations;
mod partner;
mod permissions;
mod preview;
mod progress;
mod report;
mod reset;
mod review;
mod serve;
mod signals;
mod status;
#[cfg(feature = "demo")]
mod summary;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use m365sync_config::{ConfigFile, TenantConfig};
use m365sync_service::StoreLocation;
use m365sync_store::StoreBackend;

/// Sync Microsoft 365 tenants (users, groups, licences, usage) into a local store, through a
/// sandboxed WebAssembly engine with read-only, app-only Microsoft Graph access.
#[derive(Debug, Parser)]
#[command(name = "m365sync", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sync one tenant (or every tenant) of a config file now.
    Sync(SyncArgs),
    /// Run a complete sync against a built-in simulated tenant: no Microsoft account needed.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// List the Graph application permissions a tenant's enabled features need, and why.
    Permissions(PermissionsArgs),
    /// Subscriptions and inactive licences: units that could be freed, per SKU.
    Licences(LicencesArgs),
    /// Write stored people, licences, usage, mailboxes, groups, the organization or its
    /// domains as CSV or JSON on stdout.
    Export(ExportArgs),
    /// The sync log: stored runs, newest first, with their counts, warnings and errors.
    Logs(LogsArgs),
    /// Who a sync would create, update, link or leave out, and why; writes nothing.
    Preview(PreviewArgs),
    /// Each tenant's organization match, and decisions on it (accept, change, ignore, create).
    Review(ReviewArgs),
    /// The platform's organizations that tenants are matched to: list, add, import.
    Organizations(OrganizationsArgs),
    /// Delete everything the store holds for one tenant, to start it afresh (keeps the
    /// sync log and the platform's organizations).
    Reset(ResetArgs),
    /// Sync the config's tenants unattended: schedules, a queue shared by workers, retries,
    /// the HTTP API, metrics, the change feed and webhooks.
    Serve(ServeArgs),
    /// The served tenants' status: last and next run, people, what needs attention.
    Status(StatusArgs),
    /// The change feed after a cursor: people created, updated, linked, removed; group
    /// memberships; licences assigned and taken away.
    Changes(ChangesArgs),
    /// The secrets and certificates of each [[app]] (read from Graph in its home tenant)
    /// and when they end.
    Credentials(CredentialsArgs),
    /// An admin-consent link that onboards a customer's tenant with one of the config's
    /// apps (`serve` answers the redirect back and registers the tenant).
    Connect(ConnectArgs),
    /// A partner tenant's customers (delegated admin relationships) and whether its app
    /// can reach each.
    #[command(subcommand)]
    Partner(PartnerCommand),
}

#[derive(Debug, Args)]
pub struct CredentialsArgs {
    /// Config file (TOML) with the `[[app]]`s (those with `home_tenant_id` are read).
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Config file (TOML) with the `[[app]]` and `[serve]` (whose callback answers).
    #[arg(long, short)]
    config: PathBuf,
    /// The `[[app]]` the customer's admin consents to.
    #[arg(long)]
    app: String,
    /// The features the tenant will sync, comma-separated (default: all the app covers).
    #[arg(long)]
    features: Option<String>,
    /// Store `serve` uses: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// List the partner's customers, grouped by customer tenant: relationships (status,
    /// end, auto-extension, roles) and the app's consent state in each.
    Tenants(PartnerTenantsArgs),
    /// Register consented customers as tenants in the store (`serve` syncs them).
    Add(PartnerAddArgs),
}

#[derive(Debug, Args)]
pub struct PartnerAddArgs {
    /// Config file (TOML) with the `[[partner]]` and its `[[app]]`.
    #[arg(long, short)]
    config: PathBuf,
    /// The `[[partner]]` by name (default: the only one).
    #[arg(long)]
    partner: Option<String>,
    /// A customer's directory (tenant) id to add (repeatable).
    #[arg(long)]
    tenant: Vec<String>,
    /// Add every customer the app is consented in.
    #[arg(long)]
    all: bool,
    /// Store: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
}

#[derive(Debug, Args)]
pub struct PartnerTenantsArgs {
    /// Config file (TOML) with the `[[partner]]` and its `[[app]]`.
    #[arg(long, short)]
    config: PathBuf,
    /// The `[[partner]]` by name (default: the only one).
    #[arg(long)]
    partner: Option<String>,
    /// Where the admin-consent links send the customer's admin back to (the app's
    /// registered redirect URI, e.g. serve's /connect/callback).
    #[arg(long)]
    redirect_uri: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Tenant config file (TOML): its tenants, schedules, `[serve]` and webhooks.
    #[arg(long, short)]
    config: PathBuf,
    /// Store: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
    /// Where the API listens (default: `[serve] listen`, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// How often the queue is polled, in ms (tests).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    poll_ms: Option<u64>,
    /// How often due schedules are looked for, in ms (tests).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    schedule_tick_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Tenant config file (TOML): names the store and the tenants' schedules.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Store to read: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Tenant config file (TOML): names the store.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Store to read: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
    /// The last cursor seen (0: from the start).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    after: i64,
    /// At most this many events.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The tenant whose data is deleted (its name in the config / the store).
    #[arg(long)]
    tenant: String,
    /// Tenant config file (TOML): its host.db is the database.
    #[arg(long, short, conflicts_with = "db")]
    config: Option<PathBuf>,
    /// Store: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
    /// Really delete: people, groups and members, subscriptions, the organization, domains,
    /// mailboxes, usage, checkpoints (the next sync is a full one, and binds the tenant's
    /// directory afresh) and the organization-match decision. Refused without it, and while
    /// a sync of the tenant runs.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Tenant config file (TOML): its host.db is the database.
    #[arg(long, short, conflicts_with = "db")]
    config: Option<PathBuf>,
    /// Store to read: a SQLite file or a postgres:// URL (default: ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
    /// Only this tenant's runs.
    #[arg(long)]
    tenant: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
    /// Show this one run whole (its id from the list).
    #[arg(long, conflicts_with_all = ["tenant", "limit"])]
    run: Option<i64>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Tenant config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Store to compare with, a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db);
    /// only read. Without one, everybody would be created.
    #[arg(long)]
    db: Option<String>,
    /// Only this tenant (default: every tenant in the config).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Tenant config file (TOML).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Store: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long, global = true)]
    db: Option<String>,
    /// Only this tenant (a decision needs it when the config has several).
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// A decision on the tenant's match; without one, the matches are listed.
    #[command(subcommand)]
    action: Option<ReviewCommand>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReviewCommand {
    /// Accept this suggested organization.
    Accept {
        /// The organization's id (from the suggestions).
        id: String,
    },
    /// Match the tenant to this organization instead.
    Change {
        /// The organization's id (see `m365sync organizations list`).
        id: String,
    },
    /// Leave the tenant unmatched on purpose.
    Ignore,
    /// Create an organization named after the tenant (refused while any organization
    /// matches or is suggested).
    Create,
}

#[derive(Debug, Args)]
pub struct OrganizationsArgs {
    /// Tenant config file (TOML): its host.db is the database.
    #[arg(long, short, global = true, conflicts_with = "db")]
    config: Option<PathBuf>,
    /// Store: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long, global = true)]
    db: Option<String>,
    #[command(subcommand)]
    command: OrganizationsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum OrganizationsCommand {
    /// List the platform's organizations.
    List,
    /// Add an organization (its id is generated).
    Add {
        /// The organization's name.
        name: String,
    },
    /// Import organizations from a CSV file with a `name` column and an optional `id`
    /// column (rows without an id get one; a name that exists already is skipped).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Tenant config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Store to write: a SQLite file or a postgres:// URL (default: the config's store, else ./m365sync.db).
    #[arg(long)]
    db: Option<String>,
    /// Sync only this tenant (default: every tenant in the config).
    #[arg(long)]
    tenant: Option<String>,
    /// Read everything, whatever the config's mode.
    #[arg(long)]
    full: bool,
    /// Decide and report, but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// How many tenants sync at once (each in its own sandbox).
    #[arg(long, default_value_t = m365sync_service::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Commit the run's removals however many there are. Without it, a run that would
    /// remove more people than the removal guard allows (the config's max_removal_percent
    /// and max_removals) stops before removing anyone and says how many.
    #[arg(long)]
    allow_mass_removal: bool,
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users in the simulated tenant.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// Seed of the generated tenant (same seed, same tenant).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Store to write: a SQLite file or a postgres:// URL.
    #[arg(long, default_value = "m365sync-demo.db")]
    db: String,
}

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// Tenant config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Only this tenant (default: every tenant in the config).
    #[arg(long)]
    tenant: Option<String>,
    /// Also sign in as each tenant's app and compare the granted permissions with these.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Args)]
pub struct LicencesArgs {
    /// Store to read: a SQLite file or a postgres:// URL.
    #[arg(long)]
    db: Option<String>,
    /// Only this tenant (default: every tenant in the store).
    #[arg(long)]
    tenant: Option<String>,
    /// Days without activity in any workload that make a licence inactive.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Also list the inactive people.
    #[arg(long)]
    list: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportWhat {
    People,
    Subscriptions,
    Licences,
    Usage,
    Mailboxes,
    Groups,
    GroupMembers,
    Organization,
    Domains,
}

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    what: ExportWhat,
    /// Store to read: a SQLite file or a postgres:// URL.
    #[arg(long)]
    db: Option<String>,
    /// Only this tenant (default: every tenant in the store).
    #[arg(long)]
    tenant: Option<String>,
    /// Output format (`--json` also selects JSON).
    #[arg(long, value_enum, default_value_t)]
    format: ExportFormat,
    /// Tenant config file (TOML): people columns are named by its tenants' field maps
    /// (default: the engine's default field map).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// Output options shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

/// A failure at the CLI edge, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad arguments or config.
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    /// A run failed.
    pub fn run(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 1,
            error: error.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let output = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sync(args) => sync::run(args, output).await,
            #[cfg(feature = "demo")]
            Command::Demo(args) => demo::run(args, output).await,
            Command::Permissions(args) => permissions::run(args, output).await,
            Command::Licences(args) => licences::run(args, output).await,
            Command::Export(mut args) => {
                if output.json {
                    args.format = ExportFormat::Json;
                }
                export::run(args).await
            }
            Command::Logs(args) => logs::run(args, output).await,
            Command::Preview(args) => preview::run(args, output).await,
            Command::Review(args) => review::run(args, output).await,
            Command::Organizations(args) => organizations::run(args, output).await,
            Command::Reset(args) => reset::run(args, output).await,
            Command::Serve(args) => serve::run(args, output).await,
            Command::Status(args) => status::run(args, output).await,
            Command::Connect(args) => connect::run(args, output).await,
            Command::Credentials(args) => credentials::run(args, output).await,
            Command::Partner(PartnerCommand::Tenants(args)) => partner::tenants(args, output).await,
            Command::Partner(PartnerCommand::Add(args)) => partner::add(args, output).await,
            Command::Changes(args) => changes::run(args, output).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// The store a command uses: `--db` (a SQLite file or a `postgres://` URL), else the
/// config's `[store] url`, else its `host.db`, else ./m365sync.db.
pub fn store_location(db: Option<&str>, config: Option<&ConfigFile>) -> StoreLocation {
    db.map(StoreLocation::parse)
        .or_else(|| config.and_then(|c| c.store_location().as_deref().map(StoreLocation::parse)))
        .unwrap_or_else(|| StoreLocation::parse("m365sync.db"))
}

/// Open the store a command writes to (created or migrated when needed).
pub async fn open_store(location: &StoreLocation) -> Result<Box<dyn StoreBackend>, Failure> {
    m365sync_service::open_store(location)
        .await
        .map_err(Failure::run)
}

/// Open a store a command only reads: a SQLite file that does not exist is exit 2.
pub async fn open_existing_store(
    location: &StoreLocation,
) -> Result<Box<dyn StoreBackend>, Failure> {
    match m365sync_service::open_store_existing(location).await {
        Ok(store) => Ok(store),
        Err(error @ m365sync_store::StoreError::Empty(_)) => {
            Err(Failure::usage(anyhow::anyhow!("{error}")))
        }
        Err(error) => Err(Failure::run(error)),
    }
}

/// The tenants a command acts on: the named one, or every tenant of the config.
pub fn selected_tenants<'a>(
    config: &'a ConfigFile,
    name: Option<&str>,
) -> Result<Vec<&'a TenantConfig>, Failure> {
    match name {
        Some(name) => Ok(vec![
            config
                .tenant(Some(name))
                .map_err(|e| Failure::usage(anyhow::anyhow!(e)))?,
        ]),
        None => Ok(config.tenants.iter().collect()),
    }
}

/// An engine failure of a command that only reads or decides: the engine refusing the
/// request (`invalid-request`: the config or the arguments) is exit 2, anything else 1.
pub fn engine_failure(error: m365sync_runtime::RunError) -> Failure {
    use m365sync_wit::types::SyncError;
    match error.engine_error() {
        Some(SyncError::InvalidRequest(_)) => Failure::usage(error),
        _ => Failure::run(error),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("M365SYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours for a terminal only: a service's log goes to a file or the journal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
