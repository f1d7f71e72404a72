//! `blinkctl`: talk to blink's maintenance link. `blinkctl --help` lists
//! the commands; exit codes are in `blinkctl::exit` (0 ok, 1 refused by
//! the device, 2 usage, 3 no answer, 4 link, 5 local).
use anyhow::anyhow;
use blinkctl::exit::{Code, Failure, Result, Tag};
use blinkctl::{keys, link, session::Session};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vmm::maint::sender::SenderConfig;
use vmm::maint::signed::{self, Meta, Policy};

#[derive(Parser)]
#[command(
    name = "blinkctl",
    version,
    about = "Maintenance of a blink hypervisor over its UART"
)]
struct Cli {
    /// The link: a serial device (/dev/ttyUSB0), tcp:HOST:PORT or unix:PATH
    /// (QEMU's `-serial tcp::4444,server` / `-serial unix:PATH,server`).
    #[arg(long, short, global = true)]
    device: Option<String>,
    /// Baud rate of a serial device.
    #[arg(long, default_value_t = 115_200, global = true)]
    baud: u32,
    /// Seconds to wait for an answer to a command.
    #[arg(long, default_value_t = 3.0, global = true)]
    timeout: f64,
    /// An operator key (a secret key file from `keygen`): open an
    /// authenticated session before a command that changes state (a
    /// production image refuses those without one).
    #[arg(long, global = true, value_name = "FILE", env = "BLINK_OPERATOR_KEY")]
    operator_key: Option<PathBuf>,
    /// Also print the console text the device sent between frames.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The hypervisor's state: VMs, aging indicators, images, trial state.
    Status {
        /// Machine-readable.
        #[arg(long)]
        json: bool,
    },
    /// What each image slot holds.
    Images,
    /// Upload a signed image into the device's staging slot.
    Upload {
        /// A signed slot, as `blinkctl sign` writes it.
        image: PathBuf,
        /// Bytes of image per frame (64..4096).
        #[arg(long, default_value_t = 4096)]
        chunk: u16,
        /// Frames in flight (1..64).
        #[arg(long, default_value_t = 16)]
        window: u32,
        /// Send chunks as they are, not LZ4-compressed.
        #[arg(long)]
        no_compress: bool,
        /// Replace an upload of another image in progress on the device.
        #[arg(long)]
        restart: bool,
    },
    /// Warm-reload into the staged image as a trial (reverted by the
    /// device unless confirmed in time).
    Upgrade {
        /// Make it permanent after N seconds of every VM making progress.
        #[arg(long, value_name = "N")]
        confirm_after: Option<u32>,
        /// Revert unless confirmed within S seconds (device default 300;
        /// the device's `upgrade --timeout S`).
        #[arg(long, value_name = "S")]
        revert_after: Option<u32>,
    },
    /// Make the running (trial) image permanent.
    Confirm,
    /// Warm-reload back into the previous image.
    Rollback,
    /// Warm-reload into a fresh copy of the running image.
    Rejuvenate,
    /// The hypervisor's recent log.
    Log,
    /// Make an ed25519 key pair: BASE.secret (mode 0600) and BASE.pub.
    Keygen {
        #[arg(long, value_name = "BASE")]
        out: PathBuf,
        /// A production key (default: a development key, marked as such in
        /// every image it signs).
        #[arg(long)]
        production: bool,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Make a signed slot from a raw hypervisor image.
    Sign {
        /// A secret key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The raw image (`cargo xtask build` writes it).
        #[arg(long, default_value = "target/images/hypervisor.bin")]
        image: PathBuf,
        /// MAJOR.MINOR.PATCH
        #[arg(long)]
        version: String,
        /// Downgrade protection: a device refuses images below its own.
        #[arg(long)]
        security_counter: u32,
        /// A board the image supports (1 to 4; the first is written in the
        /// slot header too).
        #[arg(long = "board", required = true)]
        boards: Vec<String>,
        /// The version text `images` shows (default: "blink VERSION").
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a signed slot as a device would.
    Verify {
        slot: PathBuf,
        /// A public key file the device trusts.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        board: String,
        /// The running image's security counter.
        #[arg(long, default_value_t = 0)]
        min_counter: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("blinkctl: {f}");
            f.exit_code()
        }
    }
}

fn session(cli: &Cli) -> Result<Session> {
    let spec = cli.device.as_deref().ok_or_else(|| {
        Failure::new(
            Code::Usage,
            anyhow!("which device? give --device /dev/ttyUSB0, tcp:HOST:PORT or unix:PATH"),
        )
    })?;
    let l = link::open(spec, cli.baud).link()?;
    Ok(Session::new(
        l,
        Duration::from_secs_f64(cli.timeout.max(0.1)),
    ))
}

/// A session, authenticated first if an operator key was given and the
/// command changes state.
fn session_for(cli: &Cli, changes_state: bool) -> Result<Session> {
    let mut s = session(cli)?;
    if let (true, Some(path)) = (changes_state, &cli.operator_key) {
        let k = keys::read_secret(path)?;
        s.authenticate(&k.seed)?;
    }
    Ok(s)
}

fn remote(cli: &Cli, line: &str) -> Result<()> {
    let changes_state = match vmm::maint::command::parse(line.as_bytes()) {
        Ok(Some(c)) => vmm::maint::auth::needs_auth(&c),
        _ => false,
    };
    let mut s = session_for(cli, changes_state)?;
    let r = s.command(line);
    if cli.verbose && !s.console.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&s.console));
    }
    let r = r?;
    print!("{}", r.text);
    if !r.text.ends_with('\n') && !r.text.is_empty() {
        println!();
    }
    if r.refused {
        // A production image without a session: say what would do.
        let hint = match (&cli.operator_key, r.text.contains("authenticated session")) {
            (None, true) => {
                ": it is a production image and needs an operator session \
                 (give --operator-key FILE or BLINK_OPERATOR_KEY)"
            }
            _ => "",
        };
        return Err(Failure::new(
            Code::Refused,
            anyhow!("the device refused '{line}'{hint}"),
        ));
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.cmd {
        Cmd::Status { json } => remote(cli, if *json { "status --json" } else { "status" }),
        Cmd::Images => remote(cli, "images"),
        Cmd::Upgrade {
            confirm_after,
            revert_after,
        } => {
            let mut line = String::from("upgrade");
            if let Some(n) = confirm_after {
                line.push_str(&format!(" --confirm-after {n}"));
            }
            if let Some(s) = revert_after {
                line.push_str(&format!(" --timeout {s}"));
            }
            remote(cli, &line)
        }
        Cmd::Confirm => remote(cli, "confirm"),
        Cmd::Rollback => remote(cli, "rollback"),
        Cmd::Rejuvenate => remote(cli, "rejuvenate"),
        Cmd::Log => remote(cli, "log"),
        Cmd::Upload {
            image,
            chunk,
            window,
            no_compress,
            restart,
        } => upload(cli, image, *chunk, *window, !*no_compress, *restart),
        Cmd::Keygen {
            out,
            production,
            force,
        } => {
            let (s, p) = keys::keygen(out, !*production, *force)?;
            println!(
                "wrote {} ({} key, keep it secret) and {}",
                s.display(),
                if *production {
                    "production"
                } else {
                    "development"
                },
                p.display()
            );
            Ok(())
        }
        Cmd::Sign {
            key,
            image,
            version,
            security_counter,
            boards,
            label,
            out,
        } => {
            let k = keys::read_secret(key)?;
            let raw = std::fs::read(image)
                .map_err(|e| anyhow!("cannot read {}: {e}", image.display()))
                .local()?;
            let version = keys::parse_version(version).local()?;
            let meta = Meta {
                version,
                security_counter: *security_counter,
                boards: boards.clone(),
                development: k.development,
            };
            let label = label.clone().unwrap_or_else(|| format!("blink {version}"));
            let slot = keys::sign_image(&raw, &label, &meta, &k)?;
            std::fs::write(out, &slot)
                .map_err(|e| anyhow!("cannot write {}: {e}", out.display()))
                .local()?;
            println!(
                "wrote {}: '{label}' {version}, security counter {security_counter}, for {}, \
                 {} bytes, signed with a {} key {}",
                out.display(),
                boards.join(", "),
                slot.len(),
                if k.development {
                    "development"
                } else {
                    "production"
                },
                keys::hex(&signed::public_key(&k.seed))
            );
            Ok(())
        }
        Cmd::Verify {
            slot,
            key,
            board,
            min_counter,
        } => {
            let k = keys::read_public(key)?;
            let bytes = std::fs::read(slot)
                .map_err(|e| anyhow!("cannot read {}: {e}", slot.display()))
                .local()?;
            let trusted = [k];
            let p = Policy {
                trusted: &trusted,
                board,
                min_security_counter: *min_counter,
            };
            let v = signed::verify(&bytes, &p)
                .map_err(|e| Failure::new(Code::Refused, anyhow!("{}: {e}", slot.display())))?;
            println!(
                "{}: ok: '{}' {}, security counter {}, for {}{}",
                slot.display(),
                v.slot.version,
                v.meta.version,
                v.meta.security_counter,
                v.meta.boards.join(", "),
                if v.meta.development {
                    ", development key"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

fn upload(
    cli: &Cli,
    image: &PathBuf,
    chunk: u16,
    window: u32,
    compress: bool,
    restart: bool,
) -> Result<()> {
    let bytes = std::fs::read(image)
        .map_err(|e| anyhow!("cannot read {}: {e}", image.display()))
        .local()?;
    // Refuse locally what the device would refuse anyway, before minutes
    // on the line: it must be a signed slot.
    let info = signed::read(&bytes)
        .map_err(|e| {
            anyhow!(
                "{} is not a signed image slot: {e} (make one with `blinkctl sign`)",
                image.display()
            )
        })
        .local()?;
    let mut s = session_for(cli, true)?;
    let cfg = SenderConfig {
        chunk_size: chunk.clamp(64, 4096),
        window: window.clamp(1, 64),
        rto: s.default_rto_ms(chunk),
        max_tries: 5,
        compress,
        restart,
    };
    let pb = ProgressBar::new(bytes.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    pb.set_message(format!(
        "upload '{}' {}",
        info.slot.version, info.meta.version
    ));
    let r = s.upload(&bytes, cfg, |n| pb.set_position(n));
    pb.finish_and_clear();
    if cli.verbose && !s.console.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&s.console));
    }
    let r = r?;
    let secs = r.elapsed.as_secs_f64().max(1e-3);
    println!(
        "uploaded {} bytes in {:.1} s ({:.0} B/s): {} payload bytes ({:.1}% of the image), {} on the wire, {} frames, {} retransmitted",
        r.image_bytes,
        secs,
        r.image_bytes as f64 / secs,
        r.payload_bytes,
        100.0 * r.payload_bytes as f64 / r.image_bytes as f64,
        r.wire_bytes,
        r.frames,
        r.retransmissions
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own checks (duplicate names, a subcommand option clashing
    /// with a global one), which it otherwise makes only at run time.
    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
