//! Transports: a serial device (the `serialport` crate), or QEMU's serial
//! over a TCP (`-serial tcp::4444,server`) or Unix socket
//! (`-serial unix:/tmp/blink.sock,server`). All are byte streams with a
//! short read timeout, so the session loop can keep its timers.
use anyhow::{Context, Result};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long one read waits for bytes before the session loop looks at
/// its timers again.
pub const POLL: Duration = Duration::from_millis(5);

/// A byte stream to the device. `baud` is the line's rate when known
/// (serial), so the sender can pace frames as the line does.
pub struct Link {
    pub stream: Box<dyn Stream>,
    pub baud: Option<u32>,
    pub name: String,
}

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// `tcp:HOST:PORT`, `unix:PATH`, or a serial device path.
pub fn open(spec: &str, baud: u32) -> Result<Link> {
    if let Some(addr) = spec.strip_prefix("tcp:") {
        let s = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
        s.set_read_timeout(Some(POLL))?;
        s.set_nodelay(true)?;
        return Ok(Link {
            stream: Box::new(s),
            baud: None,
            name: spec.to_string(),
        });
    }
    if let Some(path) = spec.strip_prefix("unix:") {
        let s = UnixStream::connect(path).with_context(|| format!("cannot connect to {path}"))?;
        s.set_read_timeout(Some(POLL))?;
        return Ok(Link {
            stream: Box::new(s),
            baud: None,
            name: spec.to_string(),
        });
    }
    let port = serialport::new(spec, baud)
        .timeout(POLL)
        .open()
        .with_context(|| format!("cannot open serial device {spec} at {baud} baud"))?;
    Ok(Link {
        stream: Box::new(port),
        baud: Some(baud),
        name: spec.to_string(),
    })
}

/// Reads what is there within one poll interval; `Ok(0)` when nothing
/// came (a timeout is not an error here). End of stream is an error: the
/// other side hung up.
pub fn read_some(s: &mut dyn Stream, buf: &mut [u8]) -> io::Result<usize> {
    match s.read(buf) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the device closed the connection",
        )),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
