//! The cdrchain node: wiring of runtime, storage, consensus and network; the transaction pool,
//! block building and import, CDR ingest adapters, JSON-RPC, metrics.
//!
//! Status: empty. It is built by the node issue (#3); the `cdrchain` binary does not start a node
//! yet.
