//! The `brokerguard` binary: hands the command line to the library.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(brokerguard::cli::main(std::env::args_os()))
}
