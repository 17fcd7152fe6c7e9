//! The `m365sync` binary: the command line over the host library (see src/cli/).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
