//! The txn-log file format: reading with torn-tail detection, and appending.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use zk_proto::{Decode, Encode, FileHeader, Txn};

use super::adler32::adler32;
use super::{file_name, sync_dir, StorageError};
use crate::config::MAX_JUTE_MAXBUFFER;

/// File header size.
pub(crate) const HEADER_LEN: usize = 16;
/// checksum (8) + length (4).
const ENTRY_HEADER_LEN: usize = 12;
/// The byte that ends each entry.
const END_OF_RECORD: u8 = 0x42;
/// Log files grow in chunks of this size (filled by the file system with zeros).
const PREALLOCATE: u64 = 64 * 1024 * 1024;
/// Largest txn an entry may hold: the largest request frame any configuration accepts, plus
/// headers. Not the configured `jute.maxbuffer`: a limit lowered after larger txns were
/// logged must not make their entries look like damage.
const MAX_TXN_LEN: usize = MAX_JUTE_MAXBUFFER + 1024;

/// What reading one log file found.
#[derive(Debug)]
pub struct LogScan {
    /// Number of entries read.
    pub entries: usize,
    /// Where valid data ends.
    pub valid_len: u64,
    /// Whether a torn tail follows `valid_len`.
    pub torn: bool,
    /// The header's dbid (`None` when the header itself was torn).
    pub dbid: Option<i64>,
}

/// The header of a txn-log file (`ZKLG`, version 2, `dbid`).
pub(crate) fn log_header(dbid: i64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let bytes = FileHeader {
        magic: FileHeader::TXNLOG_MAGIC,
        version: FileHeader::VERSION,
        dbid,
    }
    .to_bytes();
    for (o, b) in out.iter_mut().zip(bytes.iter()) {
        *o = *b;
    }
    out
}

/// Appends one entry framing `body` to `buf`: `long adler32(body) · int length · body · 0x42`.
pub(crate) fn encode_entry(buf: &mut Vec<u8>, body: &[u8]) {
    buf.extend_from_slice(&i64::from(adler32(body)).to_be_bytes());
    buf.extend_from_slice(&i32::try_from(body.len()).unwrap_or(i32::MAX).to_be_bytes());
    buf.extend_from_slice(body);
    buf.push(END_OF_RECORD);
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// The length of a log file without its trailing zeros (the unused part of the preallocated
/// space), found by reading backwards so that the zeros are never held in memory.
fn data_len(file: &mut File) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const CHUNK: u64 = 1 << 20;
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = buf
            .get_mut(..usize::try_from(end - start).unwrap_or(0))
            .unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads a log file's entries, handing each txn to `on_txn` in file order. `is_last` allows a
/// torn tail (a damaged entry followed by zeros, or by garbage with no intact entry in it);
/// elsewhere damage is an error. Only the file's data (not its preallocated zeros)
/// is read into memory.
pub fn read_log_file(
    path: &Path,
    is_last: bool,
    mut on_txn: impl FnMut(Txn),
) -> Result<LogScan, StorageError> {
    scan_log_file(
        path,
        is_last,
        |body| Txn::from_bytes(body).ok(),
        |txn, _| on_txn(txn),
    )
}

/// [`read_log_file`] for any entry payload: `decode` turns an entry's checksummed body into a
/// `T` (`None`: undecodable, treated as damage); `on_entry` gets it and the file offset just
/// past the entry.
pub(crate) fn scan_log_file<T>(
    path: &Path,
    is_last: bool,
    decode: impl Fn(&[u8]) -> Option<T>,
    mut on_entry: impl FnMut(T, u64),
) -> Result<LogScan, StorageError> {
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut file = File::open(path)?;
        // The header is read even when it ends in zeros (a file with no entries yet).
        let file_len = file.metadata()?.len();
        let len = data_len(&mut file)?.max(file_len.min(HEADER_LEN as u64));
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
        file.take(len).read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read().map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
    let name = path.display().to_string();
    let corrupt = |offset: usize, reason: &str| StorageError::Corrupt {
        file: name.clone(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    let Some(header_bytes) = bytes.get(..HEADER_LEN) else {
        // Crashed while creating the file.
        if is_last {
            return Ok(LogScan {
                entries: 0,
                valid_len: 0,
                torn: !bytes.is_empty(),
                dbid: None,
            });
        }
        return Err(corrupt(0, "file shorter than its header"));
    };
    let header = FileHeader::from_bytes(header_bytes).map_err(|e| corrupt(0, &e.to_string()))?;
    if header.magic != FileHeader::TXNLOG_MAGIC || header.version != FileHeader::VERSION {
        if is_last && all_zero(&bytes) {
            return Ok(LogScan {
                entries: 0,
                valid_len: 0,
                torn: true,
                dbid: None,
            });
        }
        return Err(corrupt(0, "not a txn log (bad magic or version)"));
    }
    let dbid = Some(header.dbid);
    let mut entries = 0;
    let mut pos = HEADER_LEN;
    while let Some(rest) = bytes.get(pos..) {
        if all_zero(rest) {
            break;
        }
        match parse_entry(rest, &decode) {
            Ok((entry, len)) => {
                pos += len;
                on_entry(entry, pos as u64);
                entries += 1;
            }
            Err((reason, damaged_until)) => {
                let after = rest.get(damaged_until..).unwrap_or_default();
                if reason == TRUNCATED_ENTRY && intact_with_other_length(rest) {
                    // Not a torn write: a damaged length field in front of intact data.
                    return Err(corrupt(
                        pos,
                        "damaged length field (an intact entry of another length follows)",
                    ));
                }
                let span_end = pos + damaged_until.max(ENTRY_HEADER_LEN);
                if is_last
                    && (all_zero(after)
                        || is_garbage_tail(rest, &decode)
                        || zeroed_sector_in(&bytes, pos, span_end))
                {
                    return Ok(LogScan {
                        entries,
                        valid_len: pos as u64,
                        torn: true,
                        dbid,
                    });
                }
                return Err(corrupt(pos, reason));
            }
        }
    }
    Ok(LogScan {
        entries,
        valid_len: pos as u64,
        torn: false,
        dbid,
    })
}

/// Cuts the torn tail a scan found off the log file at `path`, keeping its first
/// `valid_len` bytes, durably. Whatever non-zero bytes are cut (a torn write's, or damaged
/// data: a bit flip in the last entry looks the same) are first copied to
/// `torn-tail.<file name>.<valid_len>` beside it, a name no log or snapshot listing (ours or
/// Apache's) picks up, so that they can still be looked at. A copy that cannot be written
/// (e.g. a full disk) is logged, and the tail cut all the same.
pub(crate) fn cut_torn_tail(path: &Path, valid_len: u64) -> Result<(), StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    let io_err = |what: &str, e| StorageError::io(format!("{what} {}", path.display()), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err("opening", e))?;
    let end = data_len(&mut file).map_err(|e| io_err("reading", e))?;
    if end > valid_len {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kept = path.with_file_name(format!("torn-tail.{name}.{valid_len}"));
        let mut copy = || -> io::Result<()> {
            file.seek(SeekFrom::Start(valid_len))?;
            let mut out = File::create(&kept)?;
            io::copy(&mut (&mut file).take(end - valid_len), &mut out)?;
            out.sync_all()?;
            path.parent().map_or(Ok(()), sync_dir)
        };
        match copy() {
            Ok(()) => tracing::warn!(
                file = %path.display(),
                valid_len,
                bytes = end - valid_len,
                kept = %kept.display(),
                "cutting a torn log tail (a copy is kept)"
            ),
            Err(e) => tracing::error!(
                file = %path.display(),
                valid_len,
                bytes = end - valid_len,
                %e,
                "cutting a torn log tail; keeping a copy failed"
            ),
        }
    }
    file.set_len(valid_len)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("truncating", e))
}

/// The longest damaged tail of the last log file that is cut off as a torn write; a longer
/// one is taken for corruption. (A torn write leaves at most a few pages of garbage: the
/// pages of the last write that did reach the disk are intact entries.)
const MAX_GARBAGE_TAIL: usize = 4 * 1024 * 1024;

/// Whether `rest`, which starts with a damaged entry, is garbage left by a torn write: short
/// enough, and no intact entry starts anywhere in it after its first byte (an intact entry
/// after damage means data was damaged in the middle of the log, which is never cut off).
fn is_garbage_tail<T>(rest: &[u8], decode: impl Fn(&[u8]) -> Option<T>) -> bool {
    rest.len() <= MAX_GARBAGE_TAIL
        && !(1..rest.len()).any(|i| {
            rest.get(i..)
                .is_some_and(|tail| parse_entry(tail, &decode).is_ok())
        })
}

/// The sector size that writes reach a disk in (and that a crash may leave unwritten).
const SECTOR: usize = 512;

/// Whether the damaged entry spanning `bytes[from..to]` lies on a sector that was never
/// written: zeros from `from` (or from a sector start inside the span) to the end of that
/// sector. The pages of one unsynced write can reach the disk out of order, leaving a zeroed
/// hole before intact entries; none of it was acknowledged (the fsync never completed), so it
/// is a torn write to cut off like any other, as etcd's WAL treats a zeroed sector, not
/// damage in the middle of the log.
fn zeroed_sector_in(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    let mut start = from;
    while start < to {
        let sector_end = (start / SECTOR + 1) * SECTOR;
        if bytes.get(start..sector_end).is_some_and(all_zero) {
            return true;
        }
        start = sector_end;
    }
    false
}

/// Why [`parse_entry`] rejects an entry whose length points past the data.
const TRUNCATED_ENTRY: &str = "truncated entry";

/// Whether `rest`, an entry whose length field points past the end of the data, is an intact
/// entry of another length: a prefix of its body matches its checksum and is followed by the
/// end-of-record byte. A torn write (the data cut short) does not look like that; a bit flip in
/// the length field does, and must not be taken for a torn tail and silently cut off.
fn intact_with_other_length(rest: &[u8]) -> bool {
    let Some(checksum) = rest
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
    else {
        return false;
    };
    let body = rest.get(ENTRY_HEADER_LEN..).unwrap_or_default();
    let mut sum = super::adler32::Adler32::default();
    for (i, byte) in body.iter().enumerate() {
        sum.update(std::slice::from_ref(byte));
        if i64::from(sum.value()) == checksum && body.get(i + 1) == Some(&END_OF_RECORD) {
            return true;
        }
    }
    false
}

/// Parses one entry at the start of `rest`: the txn and the entry's length, or why it is bad
/// and how far the damage claims to extend.
fn parse_entry<T>(
    rest: &[u8],
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Result<(T, usize), (&'static str, usize)> {
    let header = rest
        .get(..ENTRY_HEADER_LEN)
        .ok_or(("truncated entry header", ENTRY_HEADER_LEN))?;
    let checksum = i64::from_be_bytes(
        header[..8]
            .try_into()
            .map_err(|_| ("bad header", ENTRY_HEADER_LEN))?,
    );
    let len = i32::from_be_bytes(
        header[8..12]
            .try_into()
            .map_err(|_| ("bad header", ENTRY_HEADER_LEN))?,
    );
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (1..=MAX_TXN_LEN).contains(l))
        .ok_or(("implausible entry length", ENTRY_HEADER_LEN))?;
    let end = ENTRY_HEADER_LEN + len + 1;
    let body = rest
        .get(ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + len)
        .ok_or((TRUNCATED_ENTRY, end))?;
    // The cheap checks first: `is_garbage_tail` tries this at every offset of a tail.
    if rest.get(ENTRY_HEADER_LEN + len) != Some(&END_OF_RECORD) {
        return Err(("missing end-of-record marker", end));
    }
    if u32::try_from(checksum).map_or(true, |c| adler32(body) != c) {
        return Err(("checksum mismatch", end));
    }
    let entry = decode(body).ok_or(("undecodable txn", end))?;
    Ok((entry, end))
}

/// Appends entries to the current log file, starting a new file after each roll.
pub(crate) struct TxnLogWriter {
    dir: PathBuf,
    current: Option<OpenLog>,
    buffer: Vec<u8>,
}

struct OpenLog {
    file: File,
    /// Bytes written (header included).
    len: u64,
    /// Size the file has been extended to.
    allocated: u64,
}

impl TxnLogWriter {
    /// A writer that creates its files in `dir`; the first append starts a new file.
    pub(crate) fn new(dir: PathBuf) -> TxnLogWriter {
        TxnLogWriter {
            dir,
            current: None,
            buffer: Vec::with_capacity(1 << 20),
        }
    }

    /// Buffers one entry; it reaches the disk at the next [`TxnLogWriter::sync`].
    pub(crate) fn append(&mut self, zxid: i64, txn: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            self.current = Some(self.create_file(zxid)?);
        }
        encode_entry(&mut self.buffer, txn);
        Ok(())
    }

    fn create_file(&self, first_zxid: i64) -> io::Result<OpenLog> {
        let path = self.dir.join(file_name("log", first_zxid));
        // A file of this name can exist only if a crash hit right after it was created: it holds
        // no txn (recovery found none at or after `first_zxid`), so it is started over.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.write_all(&log_header(0))?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        Ok(OpenLog {
            file,
            len: HEADER_LEN as u64,
            allocated: HEADER_LEN as u64,
        })
    }

    /// Writes the buffered entries and fdatasyncs them. Any error is fatal for the server.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        let Some(log) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buffer.is_empty() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let needed = log.len + self.buffer.len() as u64;
        if needed > log.allocated {
            let target = needed.div_ceil(PREALLOCATE) * PREALLOCATE;
            log.file.set_len(target)?;
            log.allocated = target;
        }
        log.file.write_all_at(&self.buffer, log.len)?;
        log.len = needed;
        self.buffer.clear();
        log.file.sync_data()
    }

    /// Ends the current file; the next entry starts a new one named by its zxid.
    pub(crate) fn roll(&mut self) -> io::Result<()> {
        self.sync()?;
        self.current = None;
        Ok(())
    }
}
