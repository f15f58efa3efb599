//! A file of checksummed records: the on-disk unit of every controller file.
//!
//! Each record is framed as
//!
//! ```text
//! [u32 length, big-endian][u32 CRC-32 (IEEE, crc32fast) of the payload, big-endian][payload]
//! ```
//!
//! Records are only ever appended. [`RecordFile::open`] reads the records back and stops at
//! the first one that is incomplete (a torn write: the process or machine died mid-append),
//! empty (an all-zero header: a zero-filled region after a power cut; empty records are never
//! written), or
//! whose length is over [`RECORD_BYTES_MAX`] or whose checksum does not match (corruption).
//! The file is cut there and the cut is fsynced, so the next append starts on a clean
//! boundary: the same discipline as partition recovery (Kafka's `LogSegment.recover`).
//! Everything after the first bad record is dropped with it; a record is only reported
//! durable after an fsync that covers it, so a torn tail never holds acknowledged data.
//!
//! Files are replaced atomically with [`replace_atomically`]: write a temporary file, fsync
//! it, rename it over the target, fsync the directory.
//!
//! A failed write or fsync poisons the file: later writes fail without touching the disk.
//! After a failed fsync the kernel may have dropped the dirty pages, and retrying can report
//! success for data that is not there (fjall's `Poisoned`, PostgreSQL's fsyncgate).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::{FileSystem, StorageFile};

/// Frame header: length and checksum.
pub const RECORD_HEADER_BYTES: u64 = 8;
/// Largest payload a record may carry. Checked before allocating on read, so a corrupt
/// length cannot make recovery allocate gigabytes.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What [`RecordFile::open`] found.
#[derive(Debug, Default)]
pub struct RecoveredRecords {
    /// Whole, checksummed payloads in file order, each with the position of its header.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes cut from the end because they did not form whole, valid records.
    pub truncated_bytes: u64,
}

/// An append-only file of framed records.
#[derive(Debug)]
pub struct RecordFile {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// Set by the first failed write or fsync; every later write fails with it.
    poisoned: Option<String>,
}

impl RecordFile {
    /// Open (creating if needed) and read back every valid record, cutting a bad tail.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> io::Result<(RecordFile, RecoveredRecords)> {
        let file = fs.open(path)?;
        let len = file.len()?;
        let recovered = scan(file.as_ref())?;
        let position = len - recovered.truncated_bytes;
        if recovered.truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = position,
                cut_bytes = len - position,
                "cutting a torn or corrupt tail"
            );
            file.truncate(position)?;
            file.sync()?;
        }
        Ok((
            RecordFile {
                file,
                path: path.to_path_buf(),
                end: position,
                poisoned: None,
            },
            recovered,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes: where the next record starts.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Append records (not yet durable: call [`RecordFile::sync`]). Returns the position of
    /// each record's header.
    pub fn append<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<Vec<u64>> {
        self.check_poisoned()?;
        let mut buffer = Vec::new();
        let mut positions = Vec::new();
        for payload in payloads {
            positions.push(self.end + buffer.len() as u64);
            encode_record(payload, &mut buffer)?;
        }
        if buffer.is_empty() {
            return Ok(positions);
        }
        let result = self.file.write_at(&buffer, self.end);
        self.poison_on_error(result)?;
        self.end += buffer.len() as u64;
        Ok(positions)
    }

    /// Make everything appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_poisoned()?;
        let result = self.file.sync();
        self.poison_on_error(result)
    }

    /// Cut the file at `position` (a record boundary) and make the cut durable.
    pub fn truncate(&mut self, position: u64) -> io::Result<()> {
        self.check_poisoned()?;
        assert!(
            position <= self.end,
            "truncating past the end of {}",
            self.path.display()
        );
        let result = self.file.truncate(position).and_then(|()| self.file.sync());
        self.poison_on_error(result)?;
        self.end = position;
        Ok(())
    }

    /// Refuse every later write: the caller found the file in a state it cannot trust.
    pub fn poison(&mut self, reason: String) {
        self.poisoned.get_or_insert(reason);
    }

    fn check_poisoned(&self) -> io::Result<()> {
        match &self.poisoned {
            Some(reason) => Err(io::Error::other(format!(
                "{} refuses writes after an earlier failure: {reason}",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    fn poison_on_error(&mut self, result: io::Result<()>) -> io::Result<()> {
        if let Err(error) = &result {
            tracing::error!(path = %self.path.display(), %error, "controller file poisoned");
            self.poisoned = Some(error.to_string());
        }
        result
    }
}

/// Read every valid record of an existing file without repairing it (for files that are
/// replaced atomically, where a bad record is corruption rather than a torn write).
pub fn read_records(fs: &dyn FileSystem, path: &Path) -> io::Result<RecoveredRecords> {
    scan(fs.open(path)?.as_ref())
}

/// The valid records from the start of `file`, and how many bytes follow them.
fn scan(file: &dyn StorageFile) -> io::Result<RecoveredRecords> {
    let len = file.len()?;
    let mut recovered = RecoveredRecords::default();
    let mut position = 0;
    while let Some(payload) = read_record(file, position, len)? {
        let next = position + RECORD_HEADER_BYTES + payload.len() as u64;
        recovered.records.push((position, payload));
        position = next;
    }
    recovered.truncated_bytes = len - position;
    Ok(recovered)
}

/// Append one framed record to `buffer`.
pub fn encode_record(payload: &[u8], buffer: &mut Vec<u8>) -> io::Result<()> {
    if payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty record cannot be told from a zero-filled torn tail",
        ));
    }
    if payload.len() > RECORD_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "record of {} bytes is over the {RECORD_BYTES_MAX}-byte limit",
                payload.len()
            ),
        ));
    }
    let len = u32::try_from(payload.len()).expect("limit fits u32");
    buffer.extend_from_slice(&len.to_be_bytes());
    buffer.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    buffer.extend_from_slice(payload);
    Ok(())
}

/// The payload of the record at `position`, or `None` if there is no whole, valid record
/// there. I/O errors are errors; a bad record is not.
fn read_record(file: &dyn StorageFile, position: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
    if len.saturating_sub(position) < RECORD_HEADER_BYTES {
        return Ok(None);
    }
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, position)?;
    let payload_len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
    let checksum = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    let Ok(payload_len) = usize::try_from(payload_len) else {
        return Ok(None);
    };
    // Length 0 is never written (`encode_record` refuses it): an all-zero header is a
    // zero-filled region, a file extended before its data reached the disk (a power cut),
    // whose checksum of nothing happens to match.
    if payload_len == 0
        || payload_len > RECORD_BYTES_MAX
        || len - position - RECORD_HEADER_BYTES < payload_len as u64
    {
        return Ok(None);
    }
    let mut payload = vec![0u8; payload_len];
    file.read_exact_at(&mut payload, position + RECORD_HEADER_BYTES)?;
    if crc32fast::hash(&payload) != checksum {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Replace `path` with a file holding exactly `payloads` as records, atomically: a reader
/// (or a restart) sees the old file or the new one, never a mix.
pub fn replace_atomically<'a>(
    fs: &dyn FileSystem,
    path: &Path,
    payloads: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let temporary = temporary_path(path);
    let mut buffer = Vec::new();
    for payload in payloads {
        encode_record(payload, &mut buffer)?;
    }
    let file = fs.open(&temporary)?;
    file.truncate(0)?;
    file.write_at(&buffer, 0)?;
    file.sync()?;
    drop(file);
    fs.rename(&temporary, path)?;
    let directory = path.parent().unwrap_or(Path::new("."));
    fs.sync_dir(directory)
}

/// Where [`replace_atomically`] stages a file; a leftover one is garbage from a crash.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Remove a staging file left by a crash during [`replace_atomically`].
pub fn remove_leftover_temporary(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    let temporary = temporary_path(path);
    if fs.exists(&temporary)? {
        fs.remove_file(&temporary)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FaultInjectingFileSystem, StdFileSystem};

    fn open(path: &Path) -> (RecordFile, RecoveredRecords) {
        RecordFile::open(&StdFileSystem, path).unwrap()
    }

    fn payloads(recovered: &RecoveredRecords) -> Vec<Vec<u8>> {
        recovered.records.iter().map(|(_, p)| p.clone()).collect()
    }

    #[test]
    fn records_read_back_in_order_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (mut file, recovered) = open(&path);
        assert!(recovered.records.is_empty());
        let positions = file.append([&b"one"[..], b"2", b"three"]).unwrap();
        assert_eq!(positions, vec![0, 11, 20]);
        file.sync().unwrap();
        drop(file);
        let (file, recovered) = open(&path);
        assert_eq!(
            payloads(&recovered),
            vec![b"one".to_vec(), b"2".to_vec(), b"three".to_vec()]
        );
        assert_eq!(file.end(), 33);
    }

    /// Found by a fresh-clone CI run of `chaos_power_loss` (torn power cuts): a file extended
    /// before its data reached the disk reads back zeros, an all-zero header is a record of
    /// length 0 whose checksum (of nothing) matches, and the controller refused to start on
    /// "undecodable record". A zero-filled tail is a torn tail; empty records are refused.
    #[test]
    fn a_zero_filled_tail_is_cut_and_empty_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (mut file, _) = open(&path);
        file.append([&b"whole"[..]]).unwrap();
        file.sync().unwrap();
        assert!(file.append([&b""[..]]).is_err());
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 64]);
        std::fs::write(&path, &bytes).unwrap();
        let (file, recovered) = open(&path);
        assert_eq!(payloads(&recovered), vec![b"whole".to_vec()]);
        assert_eq!(file.end(), whole);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    }

    #[test]
    fn recovery_cuts_a_torn_record_and_appends_after_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (mut file, _) = open(&path);
        file.append([&b"whole"[..], b"torn record"]).unwrap();
        file.sync().unwrap();
        drop(file);
        // Lose the last 4 bytes, as a crash mid-write would.
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 4)
            .unwrap();
        let (mut file, recovered) = open(&path);
        assert_eq!(payloads(&recovered), vec![b"whole".to_vec()]);
        assert_eq!(recovered.truncated_bytes, 8 + 11 - 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 13);
        file.append([&b"next"[..]]).unwrap();
        file.sync().unwrap();
        drop(file);
        let (_, recovered) = open(&path);
        assert_eq!(
            payloads(&recovered),
            vec![b"whole".to_vec(), b"next".to_vec()]
        );
    }

    #[test]
    fn recovery_cuts_at_the_first_checksum_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let (mut file, _) = open(&path);
        file.append([&b"first"[..], b"second", b"third"]).unwrap();
        file.sync().unwrap();
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[13 + 8] ^= 0x40; // flip a bit in "second"
        std::fs::write(&path, &bytes).unwrap();
        let (_, recovered) = open(&path);
        assert_eq!(payloads(&recovered), vec![b"first".to_vec()]);
    }

    #[test]
    fn recovery_rejects_an_absurd_length_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut bytes = Vec::new();
        encode_record(b"ok", &mut bytes).unwrap();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 20]);
        std::fs::write(&path, &bytes).unwrap();
        let (file, recovered) = open(&path);
        assert_eq!(payloads(&recovered), vec![b"ok".to_vec()]);
        assert_eq!(file.end(), 10);
    }

    #[test]
    fn a_failed_fsync_poisons_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = FaultInjectingFileSystem::new(Arc::new(StdFileSystem));
        let (mut file, _) = RecordFile::open(&fs, &path).unwrap();
        file.append([&b"a"[..]]).unwrap();
        fs.start_failing_syncs();
        assert!(file.sync().is_err());
        fs.stop_failing_syncs();
        assert!(
            file.sync().is_err(),
            "a retried fsync must not report success"
        );
        assert!(file.append([&b"b"[..]]).is_err());
    }

    #[test]
    fn replace_atomically_leaves_exactly_the_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace_atomically(&StdFileSystem, &path, [&b"old"[..], b"older"]).unwrap();
        replace_atomically(&StdFileSystem, &path, [&b"new"[..]]).unwrap();
        let (_, recovered) = open(&path);
        assert_eq!(payloads(&recovered), vec![b"new".to_vec()]);
        assert!(!temporary_path(&path).exists());
    }
}
