//! The consensus write-ahead log (`wal`), the node's own metadata (`meta`, under `user/`), and
//! whole-database operations: flush, size on disk.

use crate::{layout, options, Storage, StorageError};

impl Storage {
    /// Stores a consensus WAL record. Synced before returning.
    pub fn wal_put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(self.column(layout::WAL)?, key, value, &options::synced())
            .map_err(self.db_error(layout::WAL, "put"))
    }

    /// Stores several consensus WAL records at once (all or none). Synced before returning.
    pub fn wal_put_all(&self, records: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        let column = self.column(layout::WAL)?;
        let mut batch = rocksdb::WriteBatch::default();
        for (key, value) in records {
            batch.put_cf(column, key, value);
        }
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error(layout::WAL, "put"))
    }

    /// Reads a consensus WAL record.
    pub fn wal_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_bytes(layout::WAL, key)
    }

    /// Deletes a consensus WAL record (e.g. the votes of a height that is now committed). Synced.
    pub fn wal_delete(&self, key: &[u8]) -> Result<(), StorageError> {
        self.db
            .delete_cf_opt(self.column(layout::WAL)?, key, &options::synced())
            .map_err(self.db_error(layout::WAL, "delete"))
    }

    /// Stores a metadata value of the node (kept apart from storage's own metadata). Synced.
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(self.column(layout::META)?, layout::user_meta_key(key), value, &options::synced())
            .map_err(self.db_error(layout::META, "put"))
    }

    /// Reads a metadata value stored with [`Storage::meta_put`].
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_bytes(layout::META, &layout::user_meta_key(key))
    }

    /// Approximate bytes on disk (SST, WAL and other live files of the database directory), for
    /// metrics; 0 if the directory cannot be read.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .filter(|metadata| metadata.is_file())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Flushes memtables to SST files and syncs the WAL (used at graceful shutdown, so the next
    /// start does not replay the WAL).
    pub fn flush(&self) -> Result<(), StorageError> {
        for column in layout::COLUMNS {
            self.db.flush_cf(self.column(column)?).map_err(self.db_error(column, "flush"))?;
        }
        self.db.flush_wal(true).map_err(self.db_error("*", "flush WAL"))
    }
}
