//! The `nestcore` command line (feature `cli`): the binary and `python -m nestcore` both run
//! [`main`], so they are one program with one set of options; the shell completions
//! (`nestcore completions SHELL`) and the man pages (`nestcore man DIR`) are generated from the
//! same definitions when they are asked for, so every subcommand and option is in them.

// Written as a client of the library: its `#[non_exhaustive]` options are set field by field, as
// they must be outside the crate.
#![allow(clippy::field_reassign_with_default)]

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

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

/// What `check` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// One PASS/INFO/WARN/FAIL line per check, with the remedy under each problem.
    Text,
    /// The JSON report (schema/report.schema.json).
    Json,
    /// Prometheus' text exposition format, for node_exporter's textfile collector.
    Prometheus,
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
        /// What to print: text, the JSON report, or metrics for Prometheus.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text, value_name = "FORMAT")]
        format: CheckFormat,
        /// Print the JSON report (schema/report.schema.json): the same as --format json.
        #[arg(long, conflicts_with = "format")]
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
    /// Plan turning nested virtualization on (or off) and, with --apply, carry the plan out.
    ///
    /// Prints the plan (every file diff, module reload and command) and changes nothing unless
    /// --apply is given. What an apply changed is kept in the backup store
    /// (/var/lib/nestcore/backup under the root), one transaction per `enable --apply` or
    /// `guests --apply`; --undo puts the newest apply not yet undone back, so undoing again
    /// walks back through the history, one apply a step. Exit status:
    /// 0 when the host is (or ends) as wanted, 1 when not (not applied, blocked, or forced
    /// past the verdict), 2 on an error.
    Enable {
        /// A recorded host (a folder laid out like `/`): plans and applies stay inside it.
        #[arg(long)]
        root: Option<PathBuf>,
        /// A recorded CPUID dump for --root, for the check that decides whether nesting can
        /// work there (`cpuid -r` output, libvirt <cpudata> XML or nestcore JSON).
        #[arg(long, requires = "root")]
        cpuid: Option<PathBuf>,
        /// Turn nesting off instead of on: in every persistent layer that sets it on (modprobe.d, the
        /// kernel command line). The running module keeps nesting on until it loads again: add
        /// `--persist runtime` to reload it now, or reboot.
        #[arg(long, conflicts_with = "undo")]
        off: bool,
        /// Where to make it stick: any of runtime, modprobe, cmdline (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "modprobe",
            conflicts_with = "undo"
        )]
        persist: Vec<String>,
        /// Carry the plan out (atomic writes, originals kept in the backup store; commands run
        /// without a shell).
        #[arg(long)]
        apply: bool,
        /// Print the plan (and what was applied) as JSON.
        #[arg(long)]
        json: bool,
        /// Comment out (or override) modprobe.d lines that set the opposite value, instead of
        /// reporting them as blockers.
        #[arg(long, conflicts_with = "undo")]
        neutralise_conflicts: bool,
        /// Plan and apply nesting on even where the check says it cannot work here (no VMX/SVM,
        /// disabled in the firmware, not passed on by the hypervisor below, a PVM guest).
        #[arg(long, conflicts_with = "undo")]
        force: bool,
        /// Put back exactly what the newest apply not yet undone changed (of `enable` or
        /// `guests`), from the backup store: files restored byte for byte, files it created
        /// removed, modules reloaded back. The plan names the apply and the earlier ones left.
        #[arg(long)]
        undo: bool,
    },
    /// Which of this host's guests (libvirt, nova, Proxmox) will get VMX/SVM, why, and the fix
    /// for each; with --apply, carry the fixes out.
    ///
    /// Reads the libvirt domain definitions (through virsh on the live host where libvirt
    /// answers, else the files), nova.conf's [libvirt] section and Proxmox VM configs. Changes
    /// nothing unless --apply is given. Exit status: 0 when every guest found gets the
    /// extension, 1 when any does not, 2 on an error.
    Guests {
        /// A recorded host: a folder laid out like `/` (virsh is not asked; programs are listed,
        /// not run).
        #[arg(long)]
        root: Option<PathBuf>,
        /// A recorded CPUID dump for --root.
        #[arg(long, requires = "root")]
        cpuid: Option<PathBuf>,
        /// Print JSON (schema/guests.schema.json) instead of text.
        #[arg(long)]
        json: bool,
        /// Carry the fixes out (atomic writes with backups; `virsh define`, `qm set` and the
        /// nova-compute restart run without a shell, or are listed for a recorded root). One
        /// transaction of the backup store for all the guests fixed: `nestcore enable --undo
        /// --apply` puts them all back.
        #[arg(long)]
        apply: bool,
    },
    /// Edit kernel arguments in one boot configuration file, grubby-compatibly.
    Kargs {
        /// The configuration file (grub.conf, menu.lst, /etc/default/grub, a BLS entry, ...).
        #[arg(long)]
        config: PathBuf,
        /// grub (legacy), grub2 (/etc/default/grub), bls, extlinux or kernel-cmdline.
        #[arg(long)]
        loader: String,
        /// ALL, DEFAULT or a kernel path.
        #[arg(long, default_value = "ALL")]
        update_kernel: String,
        /// Arguments to add or replace (`k=v` replaces an existing `k` in place).
        #[arg(long, allow_hyphen_values = true)]
        args: Option<String>,
        /// Arguments to remove (`k` removes any value; `k=v` only that exact value).
        #[arg(long, allow_hyphen_values = true)]
        remove_args: Option<String>,
        /// Where the kernels live relative to the configuration (like grubby's).
        #[arg(long)]
        boot_filesystem: Option<String>,
        /// Write the file (atomically, with a backup) instead of printing the result.
        #[arg(long)]
        in_place: bool,
    },
    /// Generate the guest CPU configuration that gives guests VMX/SVM (libvirt <cpu>, QEMU -cpu,
    /// nova.conf [libvirt]), or edit a libvirt domain to give (or take) it.
    GuestCpu {
        /// Output format.
        #[arg(long, default_value = "libvirt", value_parser = ["libvirt", "qemu", "nova"])]
        format: String,
        /// CPU mode: custom, host-model, host-passthrough, maximum (default: the recommendation).
        #[arg(long)]
        mode: Option<String>,
        /// CPU model name (implies custom without --mode).
        #[arg(long)]
        model: Option<String>,
        /// A feature as POLICY:NAME (force, require, optional, disable, forbid); repeatable.
        #[arg(long = "feature", value_name = "POLICY:NAME")]
        features: Vec<String>,
        /// Topology S,C,T or S,D,C,T (sockets, dies, cores, threads).
        #[arg(long)]
        topology: Option<String>,
        /// Derive the recommendation from this host's report (nesting available, vendor, ...);
        /// exits 1 when the host cannot give guests VMX/SVM now (the snippet is still printed).
        #[arg(long)]
        for_host: bool,
        /// vmx (intel) or svm (amd), instead of this host's CPU vendor.
        #[arg(long, value_parser = ["intel", "amd"])]
        vendor: Option<String>,
        /// A recorded host to derive the vendor and facts from.
        #[arg(long)]
        root: Option<PathBuf>,
        /// A recorded CPUID dump for --root.
        #[arg(long)]
        cpuid: Option<PathBuf>,
        /// Edit this libvirt domain XML (`-` for standard input) so its guest gets VMX/SVM, and
        /// print it; everything else in the document stays byte for byte.
        #[arg(long, value_name = "DOMAIN.xml")]
        ensure_nested: Option<PathBuf>,
        /// With --ensure-nested: take VMX/SVM away instead.
        #[arg(long, requires = "ensure_nested")]
        disable: bool,
    },
    /// Print the completion script for SHELL (bash, zsh or fish).
    ///
    /// bash: `nestcore completions bash > /usr/share/bash-completion/completions/nestcore`;
    /// zsh: into a folder of $fpath as `_nestcore`; fish: into
    /// ~/.config/fish/completions/nestcore.fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages (nestcore.1 and one per subcommand, nestcore-check.1, ...) into DIR.
    Man {
        /// The folder to write into (made when missing), for example /usr/local/share/man/man1.
        dir: PathBuf,
    },
}

/// The shells `completions` writes for.
#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    /// GNU bash (with the bash-completion package).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// The `nestcore` command's definition (clap), as the completions and the man pages see it.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the `nestcore` command with `args` (the program name first, as `std::env::args_os()`
/// gives them) and returns its exit status: 0 and 1 as each subcommand says, 2 on an error
/// (usage errors included). Output goes to the process's standard output and standard error,
/// both flushed before it returns.
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match Cli::try_parse_from(args) {
        Ok(cli) => match run(cli) {
            Ok(code) => code,
            Err(e) => {
                let mut msg = format!("nestcore: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                eprintln!("{msg}");
                2
            }
        },
        // --help and --version are "errors" that print to standard output and exit 0.
        Err(e) => {
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
    };
    // In a library (python -m nestcore) nothing flushes Rust's standard output at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Writes the man page of `cmd` as `DIR/NAME.1`, then one per subcommand, named by its full name
/// (`nestcore-check.1`, as clap_mangen names them), and returns the paths written.
fn write_man_pages(cmd: clap::Command, dir: &Path) -> nestcore::Result<Vec<PathBuf>> {
    fn pages(
        cmd: &clap::Command,
        source: &str,
        dir: &Path,
        written: &mut Vec<PathBuf>,
    ) -> nestcore::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone()).source(source);
        let path = dir.join(man.get_filename());
        let mut roff = Vec::new();
        let io = |e| nestcore::Error::Io {
            path: path.clone(),
            source: e,
        };
        man.render(&mut roff).map_err(io)?;
        std::fs::write(&path, roff).map_err(io)?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages(sub, source, dir, written)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|e| nestcore::Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    // Built once from the top, so that each subcommand knows its full name (nestcore-check).
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = format!("nestcore {}", nestcore::VERSION);
    let mut written = Vec::new();
    pages(&cmd, &source, dir, &mut written)?;
    Ok(written)
}

fn open_host(root: Option<&std::path::Path>, cpuid: Option<&std::path::Path>) -> nestcore::Result<Host> {
    let host = match root {
        Some(r) => Host::from_root(r)?,
        None => Host::live(),
    };
    match cpuid {
        Some(c) => host.with_cpuid_file(c),
        None => Ok(host),
    }
}

fn run(cli: Cli) -> nestcore::Result<u8> {
    match cli.command {
        Command::Check {
            root,
            cpuid,
            format,
            json,
            no_probe,
        } => {
            let host = open_host(root.as_deref(), cpuid.as_deref())?;
            let report = nestcore::check_with(&host, CheckOptions::with_probe(!no_probe && root.is_none()));
            let out = match if json { CheckFormat::Json } else { format } {
                CheckFormat::Json => report.to_json() + "\n",
                CheckFormat::Prometheus => nestcore::render_prometheus(&report),
                CheckFormat::Text => {
                    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                    nestcore::render_text(&report, color)
                }
            };
            // One write: stdout is line-buffered, and print! would split the report.
            let mut stdout = std::io::stdout().lock();
            std::io::Write::write_all(&mut stdout, out.as_bytes())
                .and_then(|()| std::io::Write::flush(&mut stdout))
                .map_err(|e| nestcore::Error::Io {
                    path: "<stdout>".into(),
                    source: e,
                })?;
            Ok(u8::try_from(report.exit_code()).unwrap_or(1))
        }
        Command::Snapshot { dir } => {
            let s = nestcore::snapshot::snapshot(&dir)?;
            println!("Recorded {} files into {}:", s.written.len(), s.dir.display());
            for f in &s.written {
                println!("  {}", f.display());
            }
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
        Command::GuestCpu {
            format,
            mode,
            model,
            features,
            topology,
            for_host,
            vendor,
            root,
            cpuid,
            ensure_nested,
            disable,
        } => {
            use nestcore::cpu::Vendor;
            use nestcore::guest::HostFacts;
            let facts = if let (Some(v), false) = (&vendor, for_host) {
                HostFacts::new(if v == "amd" { Vendor::Amd } else { Vendor::Intel })
            } else {
                let host = open_host(root.as_deref(), cpuid.as_deref())?;
                let report = nestcore::check(&host);
                let mut facts = if for_host {
                    HostFacts::from(&report)
                } else {
                    HostFacts::new(report.cpu.vendor)
                };
                if let Some(v) = &vendor {
                    // An explicit vendor decides vmx or svm too, as in the C and Python APIs.
                    facts.vendor = if v == "amd" { Vendor::Amd } else { Vendor::Intel };
                    facts.extension = facts.vendor.extension().unwrap_or(facts.extension);
                }
                facts
            };
            if facts.guest_extension().is_none() {
                return Err(nestcore::Error::InvalidInput(
                    "cannot tell whether guests need vmx or svm on this CPU: pass --vendor intel|amd".into(),
                ));
            }
            let out = match ensure_nested {
                Some(path) => {
                    let xml = if path.as_os_str() == "-" {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                            nestcore::Error::Io {
                                path: path.clone(),
                                source: e,
                            }
                        })?;
                        s
                    } else {
                        std::fs::read_to_string(&path).map_err(|e| nestcore::Error::Io {
                            path: path.clone(),
                            source: e,
                        })?
                    };
                    nestcore::guest::ensure_nested_cli(&xml, facts.vendor, disable)?
                }
                None => nestcore::guest::guest_cpu_cli(
                    &format,
                    mode.as_deref(),
                    model.as_deref(),
                    &features,
                    topology.as_deref(),
                    &facts,
                )?,
            };
            print!("{out}");
            let cannot = for_host && facts.nested_available == Some(false);
            if for_host && mode.is_none() && model.is_none() {
                // Why this configuration, and what it costs: on standard error, so that standard
                // output stays a valid snippet.
                let rec = nestcore::guest::recommend(&facts, &nestcore::guest::Needs::single_host());
                for line in rec.rationale.iter().chain(&rec.caveats) {
                    eprintln!("# {line}");
                }
            }
            if cannot {
                eprintln!(
                    "# This host cannot give guests VMX/SVM now: see `nestcore check` for why and the remedy"
                );
                return Ok(1);
            }
            Ok(0)
        }
        Command::Enable {
            root,
            cpuid,
            off,
            persist,
            apply,
            json,
            neutralise_conflicts,
            force,
            undo,
        } => {
            let host = open_host(root.as_deref(), cpuid.as_deref())?;
            let persist: Vec<&str> = persist.iter().map(String::as_str).collect();
            let mut opts = nestcore::nested::Options::default();
            opts.neutralise_conflicts = neutralise_conflicts;
            opts.force = force;
            opts.dialect = nestcore::nested::Dialect::Cli;
            // Programs (modprobe, update-grub, dracut) act on the machine they run on: for a
            // recorded root they are listed, not run.
            let exec: &dyn nestcore::plan::Executor = if host.is_live() {
                &nestcore::plan::SystemExecutor
            } else {
                &nestcore::plan::DeferringExecutor
            };
            let (text, code) = if undo {
                nestcore::nested::undo_cli(&host, apply, json, exec)?
            } else {
                nestcore::nested::enable_cli_with(&host, off, &persist, apply, json, opts, exec)?
            };
            print!("{text}");
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Guests {
            root,
            cpuid,
            json,
            apply,
        } => {
            let host = open_host(root.as_deref(), cpuid.as_deref())?;
            let report = nestcore::check(&host);
            let exec: &dyn nestcore::plan::Executor = if host.is_live() {
                &nestcore::plan::SystemExecutor
            } else {
                &nestcore::plan::DeferringExecutor
            };
            // libvirt's own view only on the live host: a recorded root has no daemon.
            let opts = if host.is_live() {
                nestcore::guests::Options::with_virsh(&nestcore::plan::SystemExecutor)
            } else {
                nestcore::guests::Options::files()
            };
            let (text, code) = nestcore::guests::guests_cli(&host, &report, &opts, apply, json, exec)?;
            print!("{text}");
            Ok(u8::try_from(code).unwrap_or(2))
        }
        Command::Kargs {
            config,
            loader,
            update_kernel,
            args,
            remove_args,
            boot_filesystem,
            in_place,
        } => {
            let text = std::fs::read_to_string(&config).map_err(|e| nestcore::Error::Io {
                path: config.clone(),
                source: e,
            })?;
            let out = nestcore::bootloader::kargs_cli(
                &text,
                &loader,
                &update_kernel,
                args.as_deref(),
                remove_args.as_deref(),
                boot_filesystem.as_deref(),
            )?;
            if in_place {
                match nestcore::plan::write_in_place(&config, &out)? {
                    Some(backup) => eprintln!(
                        "wrote {} (original saved as {})",
                        config.display(),
                        backup.display()
                    ),
                    None => eprintln!("{} unchanged", config.display()),
                }
            } else {
                print!("{out}");
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = command();
            let mut out = Vec::new();
            match shell {
                Shell::Bash => {
                    clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "nestcore", &mut out)
                }
                Shell::Zsh => {
                    clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "nestcore", &mut out)
                }
                Shell::Fish => {
                    clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "nestcore", &mut out)
                }
            }
            let mut stdout = std::io::stdout().lock();
            std::io::Write::write_all(&mut stdout, &out).map_err(|e| nestcore::Error::Io {
                path: "<stdout>".into(),
                source: e,
            })?;
            Ok(0)
        }
        Command::Man { dir } => {
            for path in write_man_pages(command(), &dir)? {
                println!("{}", path.display());
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
