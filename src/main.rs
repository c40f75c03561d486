//! The `brokerguard` binary: hands the command line to the library.

#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(brokerguard::cli::main(std::env::args_os()))
}
