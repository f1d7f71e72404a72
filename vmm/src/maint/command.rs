//! The line console's command parser: one line in, one typed command out
//! (or a typed error to print). It produces the verbs of the hypervisor's
//! one control path (`hypervisor/src/services/control.rs`), for the shell
//! on the console and for the maintenance link alike, so both accept the
//! same words and refuse the same mistakes.
//!
//! Written by hand: the grammar is a verb and at most one option, and a
//! no_std argument-parsing crate would bring more than it saves.
use alloc::string::String;
use core::fmt;

/// The longest line accepted (the shell's buffer).
pub const MAX_LINE: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `status [--json]`
    Status {
        json: bool,
    },
    Exits,
    Images,
    /// `upload`: the image itself comes as frames (`blinkctl upload`).
    Upload,
    /// `upgrade [--confirm-after N] [--timeout S]`: a trial upgrade into
    /// the staged image, made permanent by `confirm` or after N seconds of
    /// health, reverted if neither happened within S seconds (the
    /// device's default if not given).
    Upgrade {
        confirm_after_s: Option<u32>,
        timeout_s: Option<u32>,
    },
    Confirm,
    Rollback,
    Rejuvenate,
    Reboot,
    Log,
    Debug(DebugCommand),
}

impl Command {
    /// The command's word, as typed.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Status { .. } => "status",
            Command::Exits => "exits",
            Command::Images => "images",
            Command::Upload => "upload",
            Command::Upgrade { .. } => "upgrade",
            Command::Confirm => "confirm",
            Command::Rollback => "rollback",
            Command::Rejuvenate => "rejuvenate",
            Command::Reboot => "reboot",
            Command::Log => "log",
            Command::Debug(DebugCommand::Leak { .. }) => "debug-leak",
            Command::Debug(DebugCommand::Fault) => "debug-fault",
            Command::Debug(DebugCommand::Vm) => "debug-vm",
            Command::Debug(DebugCommand::RejuvenateCorrupt) => "debug-rejuvenate-corrupt",
        }
    }
}

/// Commands that exist only in debug builds (the caller decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugCommand {
    Leak { kib: usize },
    Fault,
    Vm,
    RejuvenateCorrupt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooLong {
        len: usize,
    },
    /// Control bytes or non-ASCII (line noise).
    NotText,
    Unknown(String),
    UnexpectedArgument {
        verb: &'static str,
        arg: String,
    },
    MissingValue {
        verb: &'static str,
        option: &'static str,
    },
    BadValue {
        verb: &'static str,
        option: &'static str,
        value: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong { len } => {
                write!(f, "line of {len} bytes is longer than {MAX_LINE}")
            }
            ParseError::NotText => write!(f, "line holds control or non-ASCII bytes"),
            ParseError::Unknown(w) => write!(f, "unknown command '{w}' (try 'help')"),
            ParseError::UnexpectedArgument { verb, arg } => {
                write!(f, "{verb}: unexpected argument '{arg}'")
            }
            ParseError::MissingValue { verb, option } => {
                write!(f, "{verb}: {option} needs a value")
            }
            ParseError::BadValue {
                verb,
                option,
                value,
            } => write!(f, "{verb}: {option}: '{value}' is not a number"),
        }
    }
}

/// One line, without its line ending. `Ok(None)` for a blank line.
pub fn parse(line: &[u8]) -> Result<Option<Command>, ParseError> {
    if line.len() > MAX_LINE {
        return Err(ParseError::TooLong { len: line.len() });
    }
    if line
        .iter()
        .any(|&b| !(0x20..0x7f).contains(&b) && b != b'\t')
    {
        return Err(ParseError::NotText);
    }
    // Only printable ASCII is left, so this cannot fail.
    let line = core::str::from_utf8(line).map_err(|_| ParseError::NotText)?;
    let mut words = line.split_ascii_whitespace();
    let Some(verb) = words.next() else {
        return Ok(None);
    };
    let simple =
        |verb: &'static str, c: Command, mut rest: core::str::SplitAsciiWhitespace<'_>| match rest
            .next()
        {
            Some(arg) => Err(ParseError::UnexpectedArgument {
                verb,
                arg: String::from(arg),
            }),
            None => Ok(Some(c)),
        };
    match verb {
        "help" => simple("help", Command::Help, words),
        "exits" => simple("exits", Command::Exits, words),
        "images" => simple("images", Command::Images, words),
        "upload" => simple("upload", Command::Upload, words),
        "confirm" => simple("confirm", Command::Confirm, words),
        "rollback" => simple("rollback", Command::Rollback, words),
        "rejuvenate" => simple("rejuvenate", Command::Rejuvenate, words),
        "reboot" => simple("reboot", Command::Reboot, words),
        "log" => simple("log", Command::Log, words),
        "debug-fault" => simple("debug-fault", Command::Debug(DebugCommand::Fault), words),
        "debug-vm" => simple("debug-vm", Command::Debug(DebugCommand::Vm), words),
        "debug-rejuvenate-corrupt" => simple(
            "debug-rejuvenate-corrupt",
            Command::Debug(DebugCommand::RejuvenateCorrupt),
            words,
        ),
        "status" => match words.next() {
            None => Ok(Some(Command::Status { json: false })),
            Some("--json") => simple("status", Command::Status { json: true }, words),
            Some(arg) => Err(ParseError::UnexpectedArgument {
                verb: "status",
                arg: String::from(arg),
            }),
        },
        "upgrade" => {
            let (mut confirm_after_s, mut timeout_s) = (None, None);
            while let Some(w) = words.next() {
                let (slot, option) = match w {
                    "--confirm-after" => (&mut confirm_after_s, "--confirm-after"),
                    "--timeout" => (&mut timeout_s, "--timeout"),
                    arg => {
                        return Err(ParseError::UnexpectedArgument {
                            verb: "upgrade",
                            arg: String::from(arg),
                        })
                    }
                };
                let n = number(words.next(), "upgrade", option)?;
                let n = u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
                    ParseError::BadValue {
                        verb: "upgrade",
                        option,
                        value: alloc::format!("{n}"),
                    }
                })?;
                *slot = Some(n);
            }
            Ok(Some(Command::Upgrade {
                confirm_after_s,
                timeout_s,
            }))
        }
        "debug-leak" => {
            let kib = number(words.next(), "debug-leak", "<KiB>")?;
            simple(
                "debug-leak",
                Command::Debug(DebugCommand::Leak { kib }),
                words,
            )
        }
        other => Err(ParseError::Unknown(String::from(other))),
    }
}

fn number(
    word: Option<&str>,
    verb: &'static str,
    option: &'static str,
) -> Result<usize, ParseError> {
    let w = word.ok_or(ParseError::MissingValue { verb, option })?;
    w.parse::<usize>().map_err(|_| ParseError::BadValue {
        verb,
        option,
        value: String::from(w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<Command>, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn every_verb_parses() {
        assert_eq!(p(""), Ok(None));
        assert_eq!(p("   \t "), Ok(None));
        assert_eq!(p("help"), Ok(Some(Command::Help)));
        assert_eq!(p("status"), Ok(Some(Command::Status { json: false })));
        assert_eq!(
            p("  status   --json "),
            Ok(Some(Command::Status { json: true }))
        );
        assert_eq!(p("images"), Ok(Some(Command::Images)));
        assert_eq!(p("upload"), Ok(Some(Command::Upload)));
        assert_eq!(
            p("upgrade"),
            Ok(Some(Command::Upgrade {
                confirm_after_s: None,
                timeout_s: None
            }))
        );
        assert_eq!(
            p("upgrade --timeout 5 --confirm-after 2"),
            Ok(Some(Command::Upgrade {
                confirm_after_s: Some(2),
                timeout_s: Some(5)
            }))
        );
        assert_eq!(
            p("upgrade --confirm-after 30"),
            Ok(Some(Command::Upgrade {
                confirm_after_s: Some(30),
                timeout_s: None
            }))
        );
        assert_eq!(p("confirm"), Ok(Some(Command::Confirm)));
        assert_eq!(p("rollback"), Ok(Some(Command::Rollback)));
        assert_eq!(p("rejuvenate"), Ok(Some(Command::Rejuvenate)));
        assert_eq!(p("log"), Ok(Some(Command::Log)));
        assert_eq!(p("exits"), Ok(Some(Command::Exits)));
        assert_eq!(p("reboot"), Ok(Some(Command::Reboot)));
        assert_eq!(
            p("debug-leak 4096"),
            Ok(Some(Command::Debug(DebugCommand::Leak { kib: 4096 })))
        );
        assert_eq!(p("debug-vm"), Ok(Some(Command::Debug(DebugCommand::Vm))));
        // Each verb parses back to its command.
        for line in [
            "help",
            "status",
            "exits",
            "images",
            "upload",
            "upgrade",
            "confirm",
            "rollback",
            "rejuvenate",
            "reboot",
            "log",
            "debug-fault",
            "debug-vm",
            "debug-rejuvenate-corrupt",
        ] {
            assert_eq!(p(line).unwrap().unwrap().verb(), line);
        }
        assert_eq!(p("debug-leak 1").unwrap().unwrap().verb(), "debug-leak");
    }

    #[test]
    fn mistakes_are_typed() {
        assert_eq!(
            p("stauts"),
            Err(ParseError::Unknown(String::from("stauts")))
        );
        assert!(matches!(
            p("help me"),
            Err(ParseError::UnexpectedArgument { verb: "help", .. })
        ));
        assert!(matches!(
            p("status --xml"),
            Err(ParseError::UnexpectedArgument { .. })
        ));
        assert!(matches!(
            p("status --json x"),
            Err(ParseError::UnexpectedArgument { .. })
        ));
        assert_eq!(
            p("upgrade --confirm-after"),
            Err(ParseError::MissingValue {
                verb: "upgrade",
                option: "--confirm-after"
            })
        );
        assert!(matches!(
            p("upgrade --confirm-after -1"),
            Err(ParseError::BadValue { .. })
        ));
        assert!(matches!(
            p("upgrade --confirm-after 99999999999"),
            Err(ParseError::BadValue { .. })
        ));
        assert!(matches!(
            p("debug-leak lots"),
            Err(ParseError::BadValue { .. })
        ));
        let long = "a".repeat(MAX_LINE + 1);
        assert_eq!(p(&long), Err(ParseError::TooLong { len: MAX_LINE + 1 }));
        assert_eq!(parse(b"sta\x1btus"), Err(ParseError::NotText));
        assert_eq!(parse("statüs".as_bytes()), Err(ParseError::NotText));
        // Every error prints as one line.
        let e = p("frobnicate").unwrap_err();
        assert_eq!(
            alloc::format!("{e}"),
            "unknown command 'frobnicate' (try 'help')"
        );
    }
}
