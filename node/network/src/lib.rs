//! Networking for cdrchain on libp2p: TCP + Noise + Yamux, permissioned peers (only those the
//! chain spec lists), gossipsub for transactions and consensus messages, request-response block
//! sync.
//!
//! Status: empty. It is built by the multi-validator issue (#4); nothing in the workspace uses it
//! yet.
