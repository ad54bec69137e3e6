//! The double-sign guard outside the database (review H6). The consensus WAL lives in the
//! database, so `purge-chain`, a restore from an older backup or a move to a new host with a
//! fresh database used to erase what this validator had signed: restarted at a height it had
//! voted at, it could vote again, differently. Every WAL record is therefore also written to a
//! file outside the database (next to the operator's key, or beside the database for dev keys),
//! synced and renamed into place before anything it covers leaves the node, as CometBFT keeps
//! `priv_validator_state.json`. At start the newer of the two records wins: a record ahead of
//! storage makes the validator follow as an observer, signing nothing, until sync brings storage
//! to that height, and then resume from that record (see `resume.rs`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use cdrchain_consensus::{Step, WalRecord};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{Height, Round};

use crate::NodeError;

/// Where the signing state lives, and how it is written.
#[derive(Debug, Clone)]
pub struct SigningState {
    path: PathBuf,
}

impl SigningState {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> NodeError {
        NodeError::SigningState { path: self.path.clone(), reason: reason.to_string() }
    }

    /// The last record written, if the file exists. A file that does not decode is an error:
    /// the validator must not guess what it signed.
    pub fn load(&self) -> Result<Option<WalRecord>, NodeError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        decode_exact::<WalRecord>(&bytes).map(Some).map_err(|e| {
            self.error(format!(
                "it does not decode ({e}); restore it from the key's backup, or, only if this validator \
                 never signed at the chain's current height, delete it"
            ))
        })
    }

    /// Replaces the file with `encoded` (an encoded [`WalRecord`]): written to a temporary file,
    /// synced, renamed over the old one, and the directory synced, so that a crash leaves the
    /// old record or the new one, never a torn one.
    pub fn store(&self, encoded: &[u8]) -> Result<(), NodeError> {
        let directory = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(directory)
            .map_err(|e| self.error(format!("cannot create its directory: {e}")))?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(|e| self.error(format!("cannot write {}: {e}", temporary.display())))?;
        file.write_all(encoded)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.error(format!("cannot write it: {e}")))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.error(format!("cannot replace it: {e}")))?;
        File::open(directory)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.error(format!("cannot sync its directory: {e}")))
    }
}

/// Where a record stands in the validator's signing: (height, round, step), in order.
pub fn position(record: &WalRecord) -> (Height, Round, Step) {
    (record.height, record.round, record.step)
}

/// The later of two records by [`position`]: what this validator signed last.
pub fn newer(a: Option<WalRecord>, b: Option<WalRecord>) -> Option<WalRecord> {
    match (a, b) {
        (Some(a), Some(b)) => {
            if position(&b) > position(&a) {
                Some(b)
            } else {
                Some(a)
            }
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use parity_scale_codec::Encode;

    fn record(height: u64, round: u32, step: Step) -> WalRecord {
        WalRecord {
            height: Height(height),
            round: Round(round),
            step,
            locked: None,
            valid: None,
            signed: Vec::new(),
            polka: Vec::new(),
        }
    }

    #[test]
    fn a_stored_record_is_read_back_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let state = SigningState::new(dir.path().join("keys").join("alice.signing-state"));
        assert_eq!(state.load().unwrap(), None, "no file yet: nothing signed");
        state.store(&record(7, 1, Step::Prevote).encode()).unwrap();
        assert_eq!(state.load().unwrap(), Some(record(7, 1, Step::Prevote)));
        state.store(&record(8, 0, Step::Propose).encode()).unwrap();
        assert_eq!(state.load().unwrap(), Some(record(8, 0, Step::Propose)));
        // A damaged file is an error that says what to do, not "nothing signed".
        std::fs::write(state.path(), [1u8, 2]).unwrap();
        let error = state.load().unwrap_err().to_string();
        assert!(error.contains("does not decode") && error.contains("alice.signing-state"), "{error}");
    }

    #[test]
    fn the_later_record_wins() {
        let a = record(5, 2, Step::Precommit);
        let b = record(6, 0, Step::Propose);
        assert_eq!(newer(Some(a.clone()), Some(b.clone())), Some(b.clone()));
        assert_eq!(newer(Some(b.clone()), Some(a.clone())), Some(b.clone()));
        let later_round = record(5, 3, Step::Propose);
        assert_eq!(newer(Some(a.clone()), Some(later_round.clone())), Some(later_round));
        let earlier_step = record(5, 2, Step::Prevote);
        assert_eq!(newer(Some(earlier_step), Some(a.clone())), Some(a.clone()));
        assert_eq!(newer(None, Some(a.clone())), Some(a.clone()));
        assert_eq!(newer(Some(a.clone()), None), Some(a));
        assert_eq!(newer(None, None), None);
    }
}
