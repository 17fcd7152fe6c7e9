//! `m365sync-bench`: how fast and how lean a sync is, in one table. The default command
//! runs every scenario, each in a child process of its own (so its CPU time and peak RSS
//! are its alone) against a simulator in another process, and prints the table; the
//! subcommands are those children.
//!
//! Run: `cargo run --release -p m365sync-bench` (see BENCHMARKS.md).

mod component;
mod measure;
mod native;
mod pool;
mod scenarios;
mod server;
mod table;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "m365sync-bench")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every scenario, and the table (the default).
    Table(table::Args),
    /// Serve a simulated tenant of N users (a child of `table`).
    Serve {
        #[arg(long)]
        users: usize,
    },
    /// One sync, measured (a child of `table`).
    Run(scenarios::RunArgs),
    /// Sandbox costs: instantiation from pre-instantiation, loading from the compiled cache.
    Sandbox(scenarios::SandboxArgs),
    /// Many tenants synced concurrently by the host library.
    Fleet(scenarios::FleetArgs),
    /// Memory held by pooled sandboxes, running and idle.
    Pool(pool::PoolArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli
        .command
        .unwrap_or(Command::Table(table::Args::default()))
    {
        Command::Table(args) => table::run(&args),
        Command::Serve { users } => rt.block_on(server::serve(users)),
        Command::Run(args) => rt.block_on(scenarios::run(&args)),
        Command::Sandbox(args) => rt.block_on(scenarios::sandbox(&args)),
        Command::Fleet(args) => rt.block_on(scenarios::fleet(&args)),
        Command::Pool(args) => rt.block_on(pool::pool(&args)),
    }
}
