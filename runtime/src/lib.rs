//! cdrchain's runtime: the pure core of the chain.
//!
//! What it holds:
//! - the data model: [`cdr::Cdr`] and its parts, [`tx::Transaction`]s, [`block::Header`],
//!   [`block::Block`], [`block::CommitCertificate`]; SCALE encoding for every consensus-critical
//!   byte (limits checked while decoding, [`codec`]), serde JSON for people and RPC;
//! - signatures ([`crypto`]): ed25519, strict single verification and batch verification, every
//!   signed message bound to the chain's genesis hash;
//! - canonical JSON CDR input and its validation ([`input`]), and party hashing ([`party`]): raw
//!   numbers never enter a [`cdr::Cdr`];
//! - the append-only CDR Merkle log with inclusion and consistency proofs ([`merkle`]);
//! - the state transition ([`apply::apply_block`]) and the block builder that shares its
//!   execution path, over a [`state::StateView`];
//! - authority-set changes by governance transactions ([`governance`]).
//!
//! What it does not do: read a clock, draw randomness, touch the disk or a socket. Time arrives as
//! an input (a block's timestamp), state arrives through [`state::StateView`], and results leave
//! as values ([`apply::StateChanges`]) for the node to persist.

pub mod apply;
pub mod block;
pub mod bounds;
pub mod cdr;
pub mod checkpoint;
pub mod codec;
pub mod crypto;
pub mod destination;
pub mod governance;
pub mod hash;
pub mod ids;
pub mod input;
pub mod interconnect;
pub mod merkle;
pub mod numbering;
pub mod party;
pub mod proof;
pub mod reconcile;
pub mod sample;
pub mod settlement;
pub mod smt;
pub mod source;
pub mod state;
pub mod tx;

pub use hash::Hash32;
