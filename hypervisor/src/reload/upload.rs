//! Where an upload over the maintenance link lands, and how it becomes the
//! staged image.
//!
//! The receiver (`vmm::maint::receiver`) writes chunks only into the
//! board's *upload area*, memory that holds no image anyone runs. Once the
//! whole upload is there with the digest its sender announced, [`accept`]
//! checks it as the image it claims to be, trusting nothing before the
//! signature (`vmm::maint::signed`: a key built into this image, the
//! signature, this board, the security counter, the image's SHA-256), then
//! as an image this board can run (`vmm::image_slot`), and only then
//! copies it into the staging slot (`slots::staging`). So neither the
//! running image, nor the previous one, nor a staged valid image is ever
//! replaced by an upload in progress or by one that fails a check.
//!
//! Images placed in a slot by the boot loader (QEMU's loader, the SD card)
//! are not required to be signed: whoever writes them has the board in
//! hand.
use super::slots;
use crate::arch::aarch64::cache;
use crate::arch::aarch64::sysreg::counter_freq;
use crate::board::board;
use alloc::vec::Vec;
use log::{error, info};
use vmm::image_slot::{self, HEADER_SIZE};
use vmm::maint::device::{Endpoint, Notice};
use vmm::maint::proto::UploadError;
use vmm::maint::receiver::{StagingError, StagingSlot};
use vmm::maint::signed::{self, Policy, TrustedKey};

include!(concat!(env!("OUT_DIR"), "/trusted_keys.rs"));

/// The keys an upload may be signed with (`BLINK_TRUSTED_KEYS` at build
/// time).
pub fn trusted_keys() -> Vec<TrustedKey> {
    TRUSTED_KEYS
        .iter()
        .map(|&(public, development)| TrustedKey {
            public,
            development,
        })
        .collect()
}

/// A development image: it trusts a development key (anyone with the
/// workspace can sign for it).
pub fn development() -> bool {
    TRUSTED_KEYS.iter().any(|k| k.1)
}

/// The running image's security counter, checked once (its slot is never
/// written while it runs; `status` and every upload ask for it).
static SECURITY_COUNTER: spin::Once<u32> = spin::Once::new();

/// The running image's security counter: the one signed into its slot, 0
/// for an unsigned image (one the boot loader placed).
pub fn security_counter() -> u32 {
    *SECURITY_COUNTER.call_once(|| {
        let Some(cur) = slots::current() else {
            return 0;
        };
        let keys = trusted_keys();
        let policy = Policy {
            trusted: &keys,
            board: board().name,
            min_security_counter: 0,
        };
        signed::verify(slots::bytes(cur), &policy)
            .map(|s| s.meta.security_counter)
            .unwrap_or(0)
    })
}

/// The board's upload area as the receiver's staging memory.
pub struct UploadArea;

impl UploadArea {
    fn bytes(&self) -> &[u8] {
        let (base, size) = board().upload;
        // SAFETY: the upload area is reserved in the board description,
        // identity mapped with the hypervisor region, outside the heap and
        // every slot; only the maintenance link (under its lock, on CPU 0)
        // reads or writes it, through this type: a borrow of the
        // `UploadArea` stands for the area.
        unsafe { core::slice::from_raw_parts(base as *const u8, size as usize) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let (base, size) = board().upload;
        // SAFETY: as in `bytes`; `&mut self` makes this the only borrow.
        unsafe { core::slice::from_raw_parts_mut(base as *mut u8, size as usize) }
    }
}

impl StagingSlot for UploadArea {
    fn capacity(&self) -> usize {
        board().upload.1 as usize
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), StagingError> {
        let end = offset.checked_add(data.len()).ok_or(StagingError)?;
        self.bytes_mut()
            .get_mut(offset..end)
            .ok_or(StagingError)?
            .copy_from_slice(data);
        Ok(())
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), StagingError> {
        let end = offset.checked_add(out.len()).ok_or(StagingError)?;
        out.copy_from_slice(self.bytes().get(offset..end).ok_or(StagingError)?);
        Ok(())
    }

    fn accept(&mut self, len: usize) -> Result<(), UploadError> {
        let upload = self.bytes().get(..len).ok_or(UploadError::BadImage)?;
        let keys = trusted_keys();
        let running = security_counter();
        let policy = Policy {
            trusted: &keys,
            board: board().name,
            min_security_counter: running,
        };
        let img = signed::verify(upload, &policy).map_err(|e| {
            error!("upload refused: {}; the staged image is unchanged", e);
            e.upload_error()
        })?;
        image_slot::verify(upload, &slots::rules()).map_err(|e| {
            error!("upload refused: {}; the staged image is unchanged", e);
            UploadError::BadImage
        })?;
        if crate::vcpu::quiesce::requested() {
            error!("upload refused: a reload is in progress; send it again once it is done");
            return Err(UploadError::Busy);
        }
        let slot = slots::staging();
        let (base, size) = slots::region(slot);
        let copy = HEADER_SIZE + img.slot.image_len as usize;
        if copy as u64 > size || copy > len {
            error!(
                "upload refused: {} bytes do not fit image slot {} ({} bytes)",
                copy, slot, size
            );
            return Err(UploadError::BadImage);
        }
        // SAFETY: the staging slot holds neither the running nor the
        // previous image (slots::staging); the slot is reserved, mapped,
        // and disjoint from the upload area. No reload copies it meanwhile:
        // none was requested (checked above), and one requested from
        // another CPU from now on copies in `perform`, on CPU 0, which is
        // here until the copy is done. (Such a request's own check may
        // read a half-copied slot and refuse; it never starts one.)
        unsafe { core::ptr::copy_nonoverlapping(upload.as_ptr(), base as *mut u8, copy) };
        cache::clean_to_poc(base, copy as u64);
        info!(
            "upload: '{}' (version {}, security counter {}, {} key) staged in image slot {}",
            img.slot.version,
            img.meta.version,
            img.meta.security_counter,
            if img.meta.development {
                "development"
            } else {
                "production"
            },
            slot
        );
        Ok(())
    }
}

/// The device's processing time of an upload, for `cargo xtask bench
/// maint`: the maintenance link hands over the counter ticks each input
/// byte took in `Endpoint::push` (COBS decoding, the frame's CRC-32, for a
/// Data frame decompression, the copy into the upload area, the read-back
/// and its running CRC and the Ack; for the Finish frame the SHA-256 of the
/// whole upload and [`UploadArea::accept`]: signature, image checks, copy
/// into the staging slot). Not counted: reading the UART's registers,
/// writing the answers out, interrupt entry. Console text and frames that
/// are not Data or the completing Finish (Begin, commands) are left out.
/// Once an upload completes, one line gives the sums.
struct FrameTiming {
    /// Ticks of the frame being received, its bytes so far.
    pending: u64,
    /// Decoder and receiver counters at the last byte, to see a frame end.
    seen: (u64, u64, u64),
    /// The upload being timed (its SHA-256): the sums start over for another.
    upload: Option<[u8; 32]>,
    data_frames: u64,
    data_ticks: u64,
    max_frame_ticks: u64,
}

static TIMING: spin::Mutex<FrameTiming> = spin::Mutex::new(FrameTiming {
    pending: 0,
    seen: (0, 0, 0),
    upload: None,
    data_frames: 0,
    data_ticks: 0,
    max_frame_ticks: 0,
});

/// One input byte took `ticks` in `endpoint.push`, which answered `notice`.
/// Called on CPU 0 under the link's lock.
pub fn time_byte(ticks: u64, endpoint: &Endpoint, notice: Option<&Notice>) {
    let mut t = TIMING.lock();
    t.pending += ticks;
    let d = endpoint.decoder_stats();
    let seen = (
        d.text_bytes,
        d.frames + d.errors,
        endpoint.receiver.stats.data_frames,
    );
    let before = core::mem::replace(&mut t.seen, seen);
    if seen.0 != before.0 {
        t.pending = 0;
        return;
    }
    if seen.1 == before.1 {
        return;
    }
    let frame = core::mem::take(&mut t.pending);
    let sha = endpoint.receiver.resume_state().map(|s| s.sha256);
    if sha != t.upload {
        t.upload = sha;
        (t.data_frames, t.data_ticks, t.max_frame_ticks) = (0, 0, 0);
    }
    if seen.2 != before.2 {
        t.data_frames += 1;
        t.data_ticks += frame;
        t.max_frame_ticks = t.max_frame_ticks.max(frame);
    } else if let Some(Notice::UploadComplete(s)) = notice {
        info!(
            "upload timing at {} Hz: bytes={} data_frames={} data_ticks={} max_frame_ticks={} finish_ticks={}",
            counter_freq(),
            s.total_len,
            t.data_frames,
            t.data_ticks,
            t.max_frame_ticks,
            frame
        );
    }
}
