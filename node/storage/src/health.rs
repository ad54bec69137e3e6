//! The database's files as the operating system sees them: whether the table files are whole
//! (checked at open), and how much room is left on their disk (ingest refuses before the disk
//! is full, so that RocksDB never meets a full disk).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rocksdb::DB;

use crate::{Storage, StorageError};

/// The last eight bytes of every block-based SST file RocksDB writes (its format's magic number,
/// little-endian).
const SST_MAGIC: u64 = 0x88e2_41b7_85f4_cff7;

/// Checks every live SST file of `db` at `path`: its size is the one the manifest recorded, and it
/// ends with the table format's magic number. RocksDB opens table files only when it first reads
/// them (the database keeps at most 512 open), so a file truncated or overwritten at its end
/// would otherwise be found only by the first read that reaches it, long after the start.
pub(crate) fn check_table_files(db: &DB, path: &Path) -> Result<(), StorageError> {
    let damaged = |detail: String| StorageError::Damaged { path: path.to_path_buf(), detail };
    let files =
        db.live_files().map_err(|e| damaged(format!("its list of table files cannot be read: {e}")))?;
    for file in files {
        let name = file.name.trim_start_matches('/');
        let sst = path.join(name);
        let found = std::fs::metadata(&sst).map(|m| m.len());
        match found {
            Ok(size) if size == file.size as u64 => {}
            Ok(size) => {
                return Err(damaged(format!(
                    "table file {} is {size} bytes, the manifest recorded {} (truncated or overwritten)",
                    sst.display(),
                    file.size
                )))
            }
            // A compaction that started with the database may have retired the file since it
            // was listed: only a file the manifest still holds is missing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !still_live(db, &file.name) => continue,
            Err(e) => return Err(damaged(format!("table file {} cannot be read: {e}", sst.display()))),
        }
        if name.ends_with(".sst") && !ends_with_magic(&sst) && still_live(db, &file.name) {
            return Err(damaged(format!(
                "table file {} does not end with the SST format's magic number (its end is overwritten)",
                sst.display()
            )));
        }
    }
    Ok(())
}

/// Whether `name` is still one of `db`'s live table files (true when the list cannot be read, so
/// that a doubt counts as damage).
fn still_live(db: &DB, name: &str) -> bool {
    db.live_files().map_or(true, |files| files.iter().any(|f| f.name == name))
}

fn ends_with_magic(file: &Path) -> bool {
    let mut tail = [0u8; 8];
    std::fs::File::open(file)
        .and_then(|mut f| {
            f.seek(SeekFrom::End(-8))?;
            f.read_exact(&mut tail)
        })
        .is_ok_and(|()| u64::from_le_bytes(tail) == SST_MAGIC)
}

impl Storage {
    /// Bytes an unprivileged writer may still use on the filesystem of the database.
    pub fn free_disk_bytes(&self) -> std::io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.path)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_number_is_the_one_rocksdb_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
        db.flush().unwrap();
        check_table_files(&db, dir.path()).unwrap();
        let sst = db.live_files().unwrap()[0].name.trim_start_matches('/').to_string();
        assert!(ends_with_magic(&dir.path().join(&sst)));
        // Its end overwritten: named, with the repair.
        let file = dir.path().join(&sst);
        let mut bytes = std::fs::read(&file).unwrap();
        let end = bytes.len();
        bytes[end - 8..].fill(0);
        std::fs::write(&file, &bytes).unwrap();
        let error = check_table_files(&db, dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&sst) && error.contains("magic number") && error.contains("purge-chain"),
            "{error}"
        );
        // Truncated: the size the manifest recorded is not the file's.
        std::fs::write(&file, &bytes[..end / 2]).unwrap();
        let error = check_table_files(&db, dir.path()).unwrap_err().to_string();
        assert!(error.contains(&sst) && error.contains("the manifest recorded"), "{error}");
    }
}
