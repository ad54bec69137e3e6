//! Storage for cdrchain on RocksDB: column families for headers, bodies, commit certificates, the
//! hash index, CDRs by (recorder, sequence), the call-id and (partner pair, time) indexes, Merkle
//! log nodes, the small state, the durable ingest queue, the consensus WAL and metadata; one
//! `WriteBatch` per committed block; implements the runtime's `StateView` and Merkle `NodeStore`.
//!
//! Status: empty. It is built by the node issue (#3); nothing in the workspace uses it yet.
