//! The `exo` binary: parses the command line and hands each subcommand to the library.

use clap::Parser;
use exo_cli::{Cli, Command, account, bench, devnet, finish, key, node};
use std::process::ExitCode;

/// A node runs the validators' block execution, its API and workers on many threads that
/// allocate small buffers all the time; mimalloc's per-thread pages serve them with less
/// contention and overhead than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Provider(command) => exo_cli::provider::run(command, &cli.global),
        Command::Stake(command) => exo_cli::stake::run(command, &cli.global),
        Command::Validators(args) => exo_cli::stake::validators(&args, &cli.global),
        Command::App(command) => exo_cli::app::run(command, &cli.global),
        Command::Job(command) => exo_cli::job::run(command, &cli.global),
        Command::Exec(command) => exo_cli::exec::run(command, &cli.global),
        Command::Key(command) => key::run(command, &cli.global),
        Command::Account(command) => account::run(command, &cli.global),
        Command::Node(args) => node::run(args, &cli.global),
        Command::Devnet(args) => devnet::run(args, &cli.global),
        Command::Bench(command) => bench::run(command, &cli.global),
        Command::Worker(args) => exo_cli::worker::run(args, &cli.global),
    };
    finish(&cli.global, result)
}
