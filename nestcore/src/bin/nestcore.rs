//! The `nestcore` command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nestcore::{CheckOptions, Host};

#[derive(Parser)]
#[command(
    name = "nestcore",
    version,
    about = "Can this machine run VMs, can its guests run their own, and what must change"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check this host (or a recorded one) and explain the verdict.
    ///
    /// Exit status: 0 when KVM is usable and nested virtualization is available to guests,
    /// 1 when not, 2 on an error.
    Check {
        /// A recorded host: a folder laid out like `/`.
        #[arg(long)]
        root: Option<PathBuf>,
        /// A recorded CPUID dump (`cpuid -r` output, libvirt <cpudata> XML or nestcore JSON).
        #[arg(long)]
        cpuid: Option<PathBuf>,
        /// Print the JSON report (schema/report.schema.json) instead of text.
        #[arg(long)]
        json: bool,
        /// Skip the functional probe (creating a test VM). Recorded hosts are never probed.
        #[arg(long)]
        no_probe: bool,
    },
    /// Record this host's relevant files and CPUID into DIR for a bug report or a fixture.
    Snapshot {
        /// An empty or new folder.
        dir: PathBuf,
    },
    /// Print this CPU's CPUID leaves as nestcore JSON (usable with `check --cpuid`).
    Cpuid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut msg = format!("nestcore: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> nestcore::Result<u8> {
    match cli.command {
        Command::Check {
            root,
            cpuid,
            json,
            no_probe,
        } => {
            let host = match &root {
                Some(r) => Host::from_root(r)?,
                None => Host::live(),
            };
            let host = match &cpuid {
                Some(c) => host.with_cpuid_file(c)?,
                None => host,
            };
            let report = nestcore::check_with(&host, CheckOptions::with_probe(!no_probe && root.is_none()));
            if json {
                println!("{}", report.to_json());
            } else {
                let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                print!("{}", nestcore::render_text(&report, color));
            }
            Ok(u8::try_from(report.exit_code()).unwrap_or(1))
        }
        Command::Snapshot { dir } => {
            let s = nestcore::snapshot::snapshot(&dir)?;
            println!("Recorded {} files into {}", s.files.len(), s.dir.display());
            match &s.cpuid {
                Some(c) => println!(
                    "Reproduce with: nestcore check --root {} --cpuid {}",
                    s.dir.display(),
                    c.display()
                ),
                None => println!("Reproduce with: nestcore check --root {}", s.dir.display()),
            }
            Ok(0)
        }
        Command::Cpuid => {
            let host = Host::live();
            let s = nestcore::snapshot::live_cpuid_json(&host).ok_or_else(|| {
                nestcore::Error::Unsupported("this machine has no CPUID instruction".into())
            })?;
            println!("{s}");
            Ok(0)
        }
    }
}
