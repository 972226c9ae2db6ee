//! The `carebridge` binary: parses the command line and reports how it
//! ended; everything else is in the library ([`carebridge::cli`]).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match carebridge::cli::run(carebridge::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Under systemd, `<3>` files the last word at priority err, so
            // `journalctl -p err` shows why the gateway stopped.
            let prefix = if std::env::var_os("JOURNAL_STREAM").is_some() {
                "<3>"
            } else {
                ""
            };
            eprintln!("{prefix}carebridge: {:#}", e.error);
            ExitCode::from(e.code)
        }
    }
}
