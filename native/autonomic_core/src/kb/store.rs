//! Persistence of a knowledge base in a directory: a snapshot plus an append log.
//!
//! - `kb.snapshot.json`: the whole knowledge base in the file format of [`super::json`] (epoch
//!   included), replaced atomically: written to `kb.snapshot.json.tmp`, fsynced, renamed over the
//!   old one, directory fsynced.
//! - `kb.log`: the records added since that snapshot, one checksummed line each
//!   ([`super::json::decode_lines`]); appended and fdatasynced in batches.
//!
//! Loading reads the snapshot, then the log. Replaying the log is idempotent (records are
//! identified by id and the content does not depend on their order), so a crash between
//! writing a snapshot and truncating the log only leaves duplicates that are ignored. A torn or
//! damaged tail of the log (a crash in the middle of an append) is truncated; a damaged line in
//! the middle is skipped and counted. A snapshot that does not parse is moved aside (never
//! deleted) and the log alone is loaded, rather than refusing to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use super::json;
use super::record::Failure;

pub const SNAPSHOT_FILE: &str = "kb.snapshot.json";
pub const LOG_FILE: &str = "kb.log";

#[derive(Debug, Error)]
#[error("{op} {}: {source}", .path.display())]
pub struct StoreError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What was found on disk.
#[derive(Debug, Default)]
pub struct Loaded {
    pub epoch: i64,
    pub snapshot_records: Vec<Failure>,
    pub log_records: Vec<Failure>,
    /// Damaged log lines skipped.
    pub corrupt_lines: usize,
    /// Bytes of torn or damaged log tail truncated.
    pub truncated_bytes: u64,
    /// Where an unreadable snapshot was moved, and why it was unreadable.
    pub quarantined: Option<(PathBuf, String)>,
}

/// The open files of a knowledge base directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    log: File,
    log_lines: u64,
    log_bytes: u64,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsynced, renamed
/// over `path`, and the directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(err("create", &tmp))?;
        f.write_all(bytes).map_err(err("write", &tmp))?;
        f.sync_all().map_err(err("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(err("rename", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync", dir))
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err("read", path)(e)),
    }
}

impl Store {
    /// Opens (creating if needed) the directory and loads what it holds.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        fs::create_dir_all(dir).map_err(err("create", dir))?;
        let mut loaded = Loaded::default();

        let snap_path = dir.join(SNAPSHOT_FILE);
        if let Some(bytes) = read_if_exists(&snap_path)? {
            match json::decode_file(&bytes) {
                Ok(contents) => {
                    loaded.epoch = contents.epoch;
                    loaded.snapshot_records = contents.records;
                }
                Err(e) => {
                    let aside = dir.join(format!("{SNAPSHOT_FILE}.corrupt-{}", now_ms()));
                    fs::rename(&snap_path, &aside).map_err(err("rename", &snap_path))?;
                    loaded.quarantined = Some((aside, e.to_string()));
                }
            }
        }

        let log_path = dir.join(LOG_FILE);
        let mut log_lines = 0;
        let mut log_bytes = 0;
        if let Some(bytes) = read_if_exists(&log_path)? {
            let lines = json::decode_lines(&bytes);
            log_lines = (lines.records.len() + lines.corrupt) as u64;
            log_bytes = lines.clean_len as u64;
            loaded.corrupt_lines = lines.corrupt;
            loaded.truncated_bytes = (bytes.len() - lines.clean_len) as u64;
            loaded.log_records = lines.records;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(err("open", &log_path))?;
        if loaded.truncated_bytes > 0 {
            log.set_len(log_bytes).map_err(err("truncate", &log_path))?;
            log.sync_all().map_err(err("fsync", &log_path))?;
        }
        Ok((
            Store {
                dir: dir.to_path_buf(),
                log,
                log_lines,
                log_bytes,
            },
            loaded,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lines in the log (since the last snapshot).
    pub fn log_lines(&self) -> u64 {
        self.log_lines
    }

    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Appends `lines` lines (`bytes`) to the log and fdatasyncs it. On failure the log is cut
    /// back to its previous length, so a failed append never leaves half a batch behind.
    pub fn append(&mut self, bytes: &[u8], lines: u64) -> Result<(), StoreError> {
        let path = self.dir.join(LOG_FILE);
        let result = self
            .log
            .write_all(bytes)
            .map_err(err("write", &path))
            .and_then(|()| self.log.sync_data().map_err(err("fsync", &path)));
        match result {
            Ok(()) => {
                self.log_lines += lines;
                self.log_bytes += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.log.set_len(self.log_bytes);
                Err(e)
            }
        }
    }

    /// Replaces the snapshot with `bytes` (a whole file) and empties the log.
    pub fn write_snapshot(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomically(&self.dir.join(SNAPSHOT_FILE), bytes)?;
        let path = self.dir.join(LOG_FILE);
        self.log.set_len(0).map_err(err("truncate", &path))?;
        self.log.sync_all().map_err(err("fsync", &path))?;
        self.log_lines = 0;
        self.log_bytes = 0;
        Ok(())
    }
}
