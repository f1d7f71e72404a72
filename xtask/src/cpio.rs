//! A writer for the "newc" cpio format (`070701`), the one the Linux kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace/
//! buffer-format.rst).
//!
//! Written here rather than by running `cpio` so that building the
//! initramfs needs no host package, and so that the archive is
//! byte-for-byte reproducible (fixed inode numbers, mtime 0, root owner).

use anyhow::{bail, Result};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An in-memory newc archive. Entries are written in the order added; the
/// kernel creates them in that order, so a directory must come before what
/// it contains.
#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    finished: bool,
}

/// Field values of one header; everything else is zero.
struct Header<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter {
            out: Vec::new(),
            // Inode 0 is avoided: some unpackers treat it as "no inode".
            next_ino: 1,
            finished: false,
        }
    }

    /// A directory with permissions `perm` (e.g. 0o755).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        self.entry(Header {
            name,
            mode: S_IFDIR | (perm & 0o7777),
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        })
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(Header {
            name,
            mode: S_IFREG | (perm & 0o7777),
            nlink: 1,
            rdev: (0, 0),
            data,
        })
    }

    /// A symbolic link `name -> target` (the target is the entry's data).
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(Header {
            name,
            mode: S_IFLNK | 0o777,
            nlink: 1,
            rdev: (0, 0),
            data: target.as_bytes(),
        })
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(Header {
            name,
            mode: S_IFCHR | (perm & 0o7777),
            nlink: 1,
            rdev: (major, minor),
            data: &[],
        })
    }

    fn entry(&mut self, h: Header) -> Result<()> {
        if self.finished {
            bail!("cpio: entry {:?} added after the trailer", h.name);
        }
        // Paths are stored relative ("bin/sh"), as `find . | cpio` would.
        let name = h.name.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') || name == "TRAILER!!!" {
            bail!("cpio: invalid entry name {:?}", h.name);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw(name, ino, h.mode, h.nlink, h.rdev, h.data)
    }

    fn raw(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| anyhow::anyhow!("cpio: {name:?} is larger than 4 GiB"))?;
        // The name size counts the terminating NUL.
        let namesize = name.len() as u32 + 1;
        let fields = [
            ino, mode, 0, // uid
            0, // gid
            nlink, 0, // mtime
            size, 0, // devmajor
            0, // devminor
            rdev.0, rdev.1, namesize, 0, // check (only used by the "070702" variant)
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
        Ok(())
    }

    /// Header+name and data each end on a 4-byte boundary of the archive.
    fn pad4(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Appends the `TRAILER!!!` entry and returns the archive.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.raw("TRAILER!!!", 0, 0, 1, (0, 0), &[])?;
        self.finished = true;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: (name, mode, nlink, rdevmajor, rdevminor, data).
    type Entry = (String, u32, u32, u32, u32, Vec<u8>);

    /// An independent reader for the test: walks the archive strictly,
    /// checking magic and alignment, until the trailer.
    fn parse(mut a: &[u8]) -> Vec<Entry> {
        let total = a.len();
        let mut entries = Vec::new();
        loop {
            let off = total - a.len();
            assert_eq!(off % 4, 0, "entry at unaligned offset {off}");
            assert_eq!(&a[..6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, nlink, size) = (field(1), field(4), field(6) as usize);
            let (rmaj, rmin, namesize) = (field(9), field(10), field(11) as usize);
            assert_eq!(field(5), 0, "mtime");
            let name = std::str::from_utf8(&a[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(a[110 + namesize - 1], 0, "name NUL");
            let data_off = (off + 110 + namesize).next_multiple_of(4) - off;
            let data = a[data_off..data_off + size].to_vec();
            let next = (off + data_off + size).next_multiple_of(4) - off;
            a = &a[next..];
            if name == "TRAILER!!!" {
                assert!(a.is_empty(), "bytes after the trailer");
                return entries;
            }
            entries.push((name, mode, nlink, rmaj, rmin, data));
        }
    }

    #[test]
    fn newc_layout() {
        let mut w = CpioWriter::new();
        w.dir("/bin", 0o755).unwrap();
        w.file("bin/busybox", 0o755, b"\x7fELF....").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        w.file("empty", 0o644, b"").unwrap();
        let a = w.finish().unwrap();

        // First header, byte for byte: "bin" (leading '/' dropped), inode 1.
        let first = b"070701\
            00000001000041ED0000000000000000000000020000000000000000\
            000000000000000000000000000000000000000400000000bin\0\0\0";
        assert_eq!(&a[..first.len()], &first[..]);

        let e = parse(&a);
        let summary: Vec<(&str, u32, u32, u32, &[u8])> = e
            .iter()
            .map(|(n, m, _, ma, mi, d)| (n.as_str(), *m, *ma, *mi, d.as_slice()))
            .collect();
        assert_eq!(
            summary,
            [
                ("bin", 0o040755, 0, 0, &b""[..]),
                ("bin/busybox", 0o100755, 0, 0, &b"\x7fELF...."[..]),
                ("bin/sh", 0o120777, 0, 0, &b"busybox"[..]),
                ("dev/console", 0o020600, 5, 1, &b""[..]),
                ("init", 0o100755, 0, 0, &b"#!/bin/sh\n"[..]),
                ("empty", 0o100644, 0, 0, &b""[..]),
            ]
        );
        assert_eq!(e[0].2, 2, "directory nlink");
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn reproducible_and_refuses_bad_names() {
        let build = || {
            let mut w = CpioWriter::new();
            w.file("a", 0o644, b"x").unwrap();
            w.finish().unwrap()
        };
        assert_eq!(build(), build());
        let mut w = CpioWriter::new();
        assert!(w.file("", 0o644, b"").is_err());
        assert!(w.file("/", 0o644, b"").is_err());
        assert!(w.file("a\0b", 0o644, b"").is_err());
        assert!(w.file("TRAILER!!!", 0o644, b"").is_err());
    }
}
