//! The few facts the guests need from their device tree (x0 at entry):
//! where RAM is, how big the DTB itself is, and the `bootargs` (which tell
//! a guest that plays one of several roles which one is its).
//!
//! The header is checked by hand before the `fdt` crate sees the blob: its
//! constructor trusts `totalsize` and the block offsets, so bogus values could
//! make it read outside the blob or panic. Pure logic over byte slices, so it
//! is unit-tested on the host; `rt::dtb` reads the blob from memory.

use fdt::Fdt;

const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the FDT header (version 17).
pub const HEADER_SIZE: usize = 40;
/// Sanity limit; the hypervisor's DTBs are a few KiB.
pub const MAX_DTB_SIZE: usize = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Guest-physical start of the (first) memory range.
    pub ram_base: u64,
    /// Its size in bytes.
    pub ram_size: u64,
    /// Guest-physical address of the DTB.
    pub dtb_addr: u64,
    /// DTB `totalsize` in bytes.
    pub dtb_size: u64,
}

impl Info {
    pub fn ram_end(&self) -> u64 {
        self.ram_base + self.ram_size
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Error {
    /// x0 is not an aligned address inside the usable RAM window.
    BadAddress(u64),
    BadMagic(u32),
    BadHeader(&'static str),
    Parse(fdt::FdtError),
    NoMemory,
    BadCells {
        address: usize,
        size: usize,
    },
    /// The memory range is empty, overflows or is outside the usable window.
    BadMemory {
        base: u64,
        size: u64,
    },
    /// The DTB does not lie inside the RAM it describes.
    DtbOutsideRam,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadAddress(a) => write!(f, "bad DTB address {a:#x}"),
            Error::BadMagic(m) => write!(f, "bad magic {m:#x}"),
            Error::BadHeader(why) => write!(f, "bad header: {why}"),
            Error::Parse(e) => write!(f, "{e}"),
            Error::NoMemory => write!(f, "no memory range in /memory"),
            Error::BadCells { address, size } => {
                write!(
                    f,
                    "unsupported #address-cells={address} / #size-cells={size}"
                )
            }
            Error::BadMemory { base, size } => write!(f, "bad memory range {base:#x}+{size:#x}"),
            Error::DtbOutsideRam => write!(f, "DTB lies outside RAM"),
        }
    }
}

impl From<fdt::FdtError> for Error {
    fn from(e: fdt::FdtError) -> Self {
        Error::Parse(e)
    }
}

fn be32(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_be_bytes(b)
}

/// Checks that `[offset, offset + size)` lies inside a blob of `total` bytes.
fn block_ok(offset: u32, size: u32, total: usize) -> bool {
    offset as usize + size as usize <= total
}

/// Validates the header and returns the DTB's `totalsize`.
pub fn total_size(header: &[u8; HEADER_SIZE]) -> Result<usize, Error> {
    let magic = be32(header, 0);
    if magic != FDT_MAGIC {
        return Err(Error::BadMagic(magic));
    }
    let total = be32(header, 4) as usize;
    if !(HEADER_SIZE..=MAX_DTB_SIZE).contains(&total) {
        return Err(Error::BadHeader("totalsize"));
    }
    if !block_ok(be32(header, 8), be32(header, 36), total) {
        return Err(Error::BadHeader("structure block"));
    }
    if !block_ok(be32(header, 12), be32(header, 32), total) {
        return Err(Error::BadHeader("strings block"));
    }
    Ok(total)
}

/// Parses a whole DTB that is located at guest-physical `addr`; the memory
/// range must lie within `window` (what the guest can address as RAM).
pub fn parse(blob: &[u8], addr: u64, window: core::ops::Range<u64>) -> Result<Info, Error> {
    let header: &[u8; HEADER_SIZE] = blob
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::BadHeader("truncated"))?;
    let total = total_size(header)?;
    let blob = blob.get(..total).ok_or(Error::BadHeader("truncated"))?;

    let fdt = Fdt::new_unaligned_fallible(blob)?;
    let root = fdt.root()?;
    let cells = root.cell_sizes()?;
    // The `reg` parser divides by the entry size: reject 0 (and > 64-bit).
    if !(1..=2).contains(&cells.address_cells) || !(1..=2).contains(&cells.size_cells) {
        return Err(Error::BadCells {
            address: cells.address_cells,
            size: cells.size_cells,
        });
    }
    let reg = root.memory()?.reg()?;
    let entry = reg.iter::<u64, u64>().next().ok_or(Error::NoMemory)?;
    let entry = entry.map_err(|_| Error::Parse(fdt::FdtError::CollectCellsError))?;
    let (base, size) = (entry.address, entry.len);
    let end = base
        .checked_add(size)
        .ok_or(Error::BadMemory { base, size })?;
    if size == 0 || base < window.start || end > window.end {
        return Err(Error::BadMemory { base, size });
    }
    let dtb_end = addr.checked_add(total as u64).ok_or(Error::DtbOutsideRam)?;
    if addr < base || dtb_end > end {
        return Err(Error::DtbOutsideRam);
    }
    Ok(Info {
        ram_base: base,
        ram_size: size,
        dtb_addr: addr,
        dtb_size: total as u64,
    })
}

/// The `/chosen` node's `bootargs`, if it has any.
pub fn bootargs(blob: &[u8]) -> Result<Option<&str>, Error> {
    let header: &[u8; HEADER_SIZE] = blob
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::BadHeader("truncated"))?;
    let total = total_size(header)?;
    let blob = blob.get(..total).ok_or(Error::BadHeader("truncated"))?;
    let fdt = Fdt::new_unaligned_fallible(blob)?;
    Ok(fdt.root()?.chosen()?.bootargs()?)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    const WINDOW: core::ops::Range<u64> = 0x4000_0000..0xc000_0000;
    const ADDR: u64 = 0x4800_0000;

    /// A DTB like the hypervisor's, with the given root cells and memory reg.
    fn dtb(cells: Option<(u32, u32)>, memory: Option<&[u32]>) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        if let Some((a, s)) = cells {
            w.property_u32("#address-cells", a).unwrap();
            w.property_u32("#size-cells", s).unwrap();
        }
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "role=probe").unwrap();
        w.end_node(chosen).unwrap();
        if let Some(reg) = memory {
            let mem = w.begin_node("memory@40000000").unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u32("reg", reg).unwrap();
            w.end_node(mem).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn good() -> Vec<u8> {
        dtb(Some((2, 2)), Some(&[0, 0x4000_0000, 0, 0x1000_0000]))
    }

    #[test]
    fn reads_bootargs() {
        assert_eq!(bootargs(&good()).unwrap(), Some("role=probe"));
        assert!(bootargs(&good()[..20]).is_err());
    }

    #[test]
    fn parses_memory_and_size() {
        let blob = good();
        let info = parse(&blob, ADDR, WINDOW).unwrap();
        assert_eq!(info.ram_base, 0x4000_0000);
        assert_eq!(info.ram_size, 0x1000_0000);
        assert_eq!(info.ram_end(), 0x5000_0000);
        assert_eq!(info.dtb_size, blob.len() as u64);
        // One-cell addresses and sizes work too.
        let blob = dtb(Some((1, 1)), Some(&[0x4000_0000, 0x1000_0000]));
        assert_eq!(parse(&blob, ADDR, WINDOW).unwrap().ram_size, 0x1000_0000);
    }

    #[test]
    fn rejects_bad_headers() {
        let blob = good();
        assert!(matches!(
            parse(&blob[..20], ADDR, WINDOW),
            Err(Error::BadHeader(_))
        ));
        assert!(matches!(
            parse(&blob[..blob.len() - 1], ADDR, WINDOW),
            Err(Error::BadHeader(_))
        ));
        let mut bad = blob.clone();
        bad[0] = 0;
        assert!(matches!(parse(&bad, ADDR, WINDOW), Err(Error::BadMagic(_))));
        for (offset, value) in [
            (4, 0xffff_ffffu32),
            (4, 8),
            (8, 0xffff_fff0),
            (12, 0xffff_fff0),
            (32, 0xffff_ffff),
        ] {
            let mut bad = blob.clone();
            bad[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
            assert!(
                matches!(parse(&bad, ADDR, WINDOW), Err(Error::BadHeader(_))),
                "{offset}"
            );
        }
    }

    #[test]
    fn rejects_bad_memory() {
        let parse_mem = |cells, reg: Option<&[u32]>| parse(&dtb(cells, reg), ADDR, WINDOW);
        assert!(matches!(
            parse_mem(Some((0, 0)), Some(&[])),
            Err(Error::BadCells { .. })
        ));
        assert!(matches!(
            parse_mem(Some((3, 2)), Some(&[0; 5])),
            Err(Error::BadCells { .. })
        ));
        assert!(parse_mem(None, Some(&[0, 0x4000_0000, 0, 0x100])).is_err());
        assert!(parse_mem(Some((2, 2)), None).is_err());
        assert!(matches!(
            parse_mem(Some((2, 2)), Some(&[])),
            Err(Error::NoMemory)
        ));
        assert!(parse_mem(Some((2, 2)), Some(&[0, 0x4000_0000, 0])).is_err());
        assert!(matches!(
            parse_mem(Some((2, 2)), Some(&[0, 0x4000_0000, 0, 0])),
            Err(Error::BadMemory { .. })
        ));
        let too_big = [0, 0x4000_0000, 1, 0];
        assert!(matches!(
            parse_mem(Some((2, 2)), Some(&too_big)),
            Err(Error::BadMemory { .. })
        ));
        let overflow = [0xffff_ffff, 0xffff_ffff, 0, 0x10];
        assert!(matches!(
            parse_mem(Some((2, 2)), Some(&overflow)),
            Err(Error::BadMemory { .. })
        ));
        // The DTB must lie inside the RAM it describes.
        let small = [0, 0x4000_0000, 0, 0x100_0000];
        assert!(matches!(
            parse_mem(Some((2, 2)), Some(&small)),
            Err(Error::DtbOutsideRam)
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // Corrupt every byte of the structure/strings blocks in turn.
        let blob = good();
        for i in HEADER_SIZE..blob.len() {
            for value in [0x00, 0xff, 0x03, 0x80] {
                let mut bad = blob.clone();
                bad[i] = value;
                let _ = parse(&bad, ADDR, WINDOW);
            }
        }
    }
}
