//! The command line: parses arguments and maps library results to the exit
//! codes in [`crate::exit`]. Nothing else decides an exit code.

use crate::exit;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "brokerguard",
    version,
    about = "Keeps a trading bot's broker connections alive"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent in the foreground (systemd runs this).
    Run {
        /// Configuration file (default $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show the live state of a running agent.
    Status {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the raw status.json document.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and print it with defaults filled in.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate and print the effective configuration (secrets redacted).
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
        }
    };
    match cli.command {
        Command::Run { .. } | Command::Status { .. } | Command::Config { .. } => {
            eprintln!("brokerguard: this command is not available yet in this build");
            exit::FAILURE
        }
    }
}
