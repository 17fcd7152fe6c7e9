//! The `m365sync` command line: argument parsing and dispatch to one module per command.
//! Library errors become `anyhow` errors here, at the edge, and exit codes: 0 success,
//! 1 a run failed, 2 bad arguments or config.

mod demo;
mod export;
mod licences;
mod permissions;
mod progress;
mod summary;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    Demo(DemoArgs),
    /// List the Graph application permissions a tenant's enabled features need, and why.
    Permissions(PermissionsArgs),
    /// Subscriptions and inactive licences: units that could be freed, per SKU.
    Licences(LicencesArgs),
    /// Write stored people, licences, usage, mailboxes or groups as CSV or JSON on stdout.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Tenant config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// SQLite database to write (default: host.db in the config, else ./m365sync.db).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Sync only this tenant (default: every tenant in the config).
    #[arg(long)]
    tenant: Option<String>,
    /// Read everything, whatever the config's mode.
    #[arg(long)]
    full: bool,
    /// Decide and report, but write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users in the simulated tenant.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// Seed of the generated tenant (same seed, same tenant).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// SQLite database to write.
    #[arg(long, default_value = "m365sync-demo.db")]
    db: PathBuf,
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
    /// SQLite database to read.
    #[arg(long)]
    db: Option<PathBuf>,
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
    /// SQLite database to read.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Only this tenant (default: every tenant in the store).
    #[arg(long)]
    tenant: Option<String>,
    /// Output format (`--json` also selects JSON).
    #[arg(long, value_enum, default_value_t)]
    format: ExportFormat,
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

pub fn main() -> ExitCode {
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
            Command::Demo(args) => demo::run(args, output).await,
            Command::Permissions(args) => permissions::run(args, output).await,
            Command::Licences(args) => licences::run(args, output).await,
            Command::Export(mut args) => {
                if output.json {
                    args.format = ExportFormat::Json;
                }
                export::run(args).await
            }
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

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("M365SYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
