//! Property tests for every consensus-critical codec: SCALE round trips, JSON round trips, no
//! second encoding (trailing bytes and truncations refused), no panic on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::block::{Block, CommitCertificate, CommitSignature, Header, Vote, VoteKind};
use cdrchain_runtime::cdr::{Cdr, CdrBody, Disposition, Fault, Leg, Mos, Q850Cause, SipStatus};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::crypto::{EvmAddress, PublicKey, Signature};
use cdrchain_runtime::destination::Destination;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{
    CallId, Height, OperatorId, ReasonText, RedirectReason, Round, Sequence, SystemId,
};
use cdrchain_runtime::party::{PartiesAsWritten, PartyDigest};
use cdrchain_runtime::state::{CallRecord, GapRecord, OperatorRecord, StateKey};
use cdrchain_runtime::tx::{CallEvent, CallState, CdrBatch, SequenceGap, SignedTransaction, Transaction};
use parity_scale_codec::{Decode, Encode};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

fn operator() -> impl Strategy<Value = OperatorId> {
    "[a-z][a-z0-9_-]{0,31}".prop_map(|s| OperatorId::new(s).unwrap())
}

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn call_id() -> impl Strategy<Value = CallId> {
    prop_oneof!["[ -~]{1,256}", "\\PC{1,60}"].prop_map(|s| CallId::new(s).unwrap())
}

fn body() -> impl Strategy<Value = CdrBody> {
    (
        ("[!-~]{1,64}", call_id(), hash(), hash(), operator(), operator()),
        (any::<u64>(), proptest::option::of(any::<u64>()), any::<u64>(), 0usize..5),
        (
            proptest::option::of(1u8..=127),
            proptest::option::of(100u16..=699),
            proptest::option::of(100u16..=500),
            proptest::option::of(0usize..9),
            proptest::option::of("[a-z-]{1,32}"),
        ),
        (
            proptest::option::of(any::<bool>()),
            proptest::option::of(call_id()),
            any::<(bool, bool)>(),
            any::<[u8; 16]>(),
            proptest::option::of(1u32..100_000_000),
        ),
    )
        .prop_map(
            |(
                (system, call, caller, callee, from, to),
                (start, answer, end, d),
                (q, sip, mos, fault, redirect),
                (leg, linked, (caller_as_written, callee_as_written), source, destination),
            )| {
                CdrBody {
                    system_id: SystemId::new(system).unwrap(),
                    call_id: call,
                    caller: PartyDigest(caller),
                    callee: PartyDigest(callee),
                    caller_operator: from,
                    callee_operator: to,
                    destination: destination.map(Destination::CountryNetworkV1),
                    start_ms: start,
                    answer_ms: answer,
                    end_ms: end,
                    disposition: Disposition::ALL[d],
                    q850_cause: q.and_then(Q850Cause::new),
                    sip_status: sip.and_then(SipStatus::new),
                    mos: mos.and_then(Mos::from_hundredths),
                    fault: fault.map(|i| {
                        [
                            Fault::UnallocatedNumber,
                            Fault::UserBusy,
                            Fault::TemporaryFailure,
                            Fault::ServiceNotImplemented,
                            Fault::NotFound,
                            Fault::TemporarilyUnavailable,
                            Fault::Redirect,
                            Fault::CallSplit,
                            Fault::NationalUse,
                        ][i]
                    }),
                    redirect_reason: redirect.map(|r| RedirectReason::new(r).unwrap()),
                    leg: leg.map(|b| if b { Leg::B } else { Leg::A }),
                    linked_id: linked,
                    as_written: PartiesAsWritten { caller: caller_as_written, callee: callee_as_written },
                    source: cdrchain_runtime::source::SourceDigest(source),
                }
            },
        )
}

fn cdr() -> impl Strategy<Value = Cdr> {
    (operator(), any::<u64>(), body()).prop_map(|(recorder, sequence, body)| Cdr {
        recorder,
        sequence: Sequence(sequence),
        body,
    })
}

fn call_state() -> impl Strategy<Value = CallState> {
    prop_oneof![
        Just(CallState::Setup),
        Just(CallState::Ringing),
        Just(CallState::Answered),
        Just(CallState::Ended)
    ]
}

fn transaction() -> impl Strategy<Value = Transaction> {
    prop_oneof![
        (operator(), any::<u64>(), proptest::collection::vec(body(), 0..4)).prop_map(
            |(operator, first, cdrs)| {
                Transaction::CdrBatch(CdrBatch {
                    operator,
                    first_sequence: Sequence(first),
                    cdrs: BoundedVec::new(cdrs).unwrap().into(),
                })
            }
        ),
        (operator(), any::<u64>(), any::<u64>(), "\\PC{1,40}").prop_map(|(operator, from, to, reason)| {
            Transaction::SequenceGap(SequenceGap {
                operator,
                from: Sequence(from),
                to: Sequence(to),
                reason: ReasonText::new(reason).unwrap(),
            })
        }),
        (operator(), call_id(), call_state(), any::<u64>()).prop_map(|(operator, call_id, state, at_ms)| {
            Transaction::CallEvent(CallEvent { operator, call_id, state, at_ms })
        }),
    ]
}

fn signed() -> impl Strategy<Value = SignedTransaction> {
    (transaction(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(transaction, a, b)| {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        SignedTransaction { transaction, signature: Signature(signature) }
    })
}

fn header() -> impl Strategy<Value = Header> {
    (hash(), any::<u64>(), any::<u64>(), operator(), hash(), hash(), any::<u64>(), hash()).prop_map(
        |(parent_hash, number, timestamp_ms, proposer, tx_root, cdr_log_root, cdr_log_size, state_root)| {
            Header {
                parent_hash,
                number: Height(number),
                timestamp_ms,
                proposer,
                tx_root,
                cdr_log_root,
                cdr_log_size,
                state_root,
            }
        },
    )
}

fn block() -> impl Strategy<Value = Block> {
    (header(), proptest::collection::vec(signed(), 0..4))
        .prop_map(|(header, txs)| Block { header, transactions: BoundedVec::new(txs).unwrap() })
}

fn certificate() -> impl Strategy<Value = CommitCertificate> {
    (any::<u64>(), any::<u32>(), hash(), proptest::collection::vec((operator(), any::<[u8; 32]>()), 0..5))
        .prop_map(|(height, round, block_hash, sigs)| CommitCertificate {
            height: Height(height),
            round: Round(round),
            block_hash,
            signatures: BoundedVec::new(
                sigs.into_iter()
                    .map(|(authority, half)| {
                        let mut signature = [7u8; 64];
                        signature[..32].copy_from_slice(&half);
                        CommitSignature { authority, signature: Signature(signature) }
                    })
                    .collect(),
            )
            .unwrap(),
        })
}

fn state_key() -> impl Strategy<Value = StateKey> {
    prop_oneof![
        operator().prop_map(StateKey::Operator),
        Just(StateKey::Authorities),
        operator().prop_map(StateKey::NextSequence),
        (operator(), any::<u64>()).prop_map(|(o, s)| StateKey::Gap(o, Sequence(s))),
        (operator(), call_id()).prop_map(|(o, c)| StateKey::Call(o, c)),
        operator().prop_map(StateKey::LastGap),
        operator().prop_map(StateKey::LiveCalls),
        (any::<u64>(), operator(), call_id()).prop_map(|(d, o, c)| StateKey::CallDeadline(
            d.to_be_bytes(),
            o,
            c
        )),
    ]
}

/// SCALE and JSON round trips, and the encoding is the only one: any strict prefix or any extra
/// byte is refused.
fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Encode + Decode + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = value.encode();
    prop_assert_eq!(&decode_exact::<T>(&bytes).unwrap(), value);
    let mut longer = bytes.clone();
    longer.push(0);
    prop_assert!(decode_exact::<T>(&longer).is_err(), "a trailing byte must be refused");
    for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            prop_assert!(decode_exact::<T>(&bytes[..cut]).is_err(), "a prefix of {} bytes decoded", cut);
        }
    }
    let json = serde_json::to_string(value).unwrap();
    prop_assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value, "json: {}", json);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn cdrs_round_trip(cdr in cdr()) {
        round_trips(&cdr)?;
        round_trips(&cdr.body)?;
        // The leaf hash covers every byte of the encoding.
        let mut other = cdr.clone();
        other.sequence = Sequence(cdr.sequence.0.wrapping_add(1));
        prop_assert_ne!(other.leaf_hash(), cdr.leaf_hash());
    }

    #[test]
    fn transactions_round_trip(tx in signed()) {
        round_trips(&tx)?;
        round_trips(&tx.transaction)?;
    }

    #[test]
    fn blocks_and_headers_round_trip(block in block()) {
        round_trips(&block)?;
        round_trips(&block.header)?;
        let bytes = block.encode();
        prop_assert_eq!(Block::decode_bounded(&bytes, bytes.len()).unwrap(), block.clone());
        prop_assert!(Block::decode_bounded(&bytes, bytes.len() - 1).is_err());
    }

    #[test]
    fn votes_and_certificates_round_trip(cert in certificate(), kind in any::<bool>(), hash in proptest::option::of(hash())) {
        round_trips(&cert)?;
        let vote = Vote {
            kind: if kind { VoteKind::Prevote } else { VoteKind::Precommit },
            height: cert.height,
            round: cert.round,
            block_hash: hash,
        };
        round_trips(&vote)?;
    }

    #[test]
    fn state_entries_round_trip(key in state_key(), call in call_state(), at in any::<u64>(), seq in any::<u64>()) {
        round_trips(&key)?;
        round_trips(&CallRecord { state: call, at_ms: at, deadline_ms: at.wrapping_add(1) })?;
        round_trips(&GapRecord { to: Sequence(seq), reason: ReasonText::new("r").unwrap(), declared_at: Height(at) })?;
        round_trips(&OperatorRecord { signing_key: PublicKey([seq as u8; 32]), evm_address: EvmAddress([at as u8; 20]) })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_exact::<Block>(&bytes);
        let _ = decode_exact::<SignedTransaction>(&bytes);
        let _ = decode_exact::<Cdr>(&bytes);
        let _ = decode_exact::<CommitCertificate>(&bytes);
        let _ = decode_exact::<StateKey>(&bytes);
        let _ = Block::decode_bounded(&bytes, 256);
    }
}

#[test]
fn decoding_enforces_limits_before_allocating() {
    use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;
    use parity_scale_codec::Compact;
    // A batch that claims one CDR more than the limit is refused at its length prefix.
    let mut bytes = Transaction::CdrBatch(CdrBatch {
        operator: OperatorId::new("alice").unwrap(),
        first_sequence: Sequence(0),
        cdrs: BoundedVec::default().into(),
    })
    .encode();
    bytes.truncate(bytes.len() - 1); // drop the empty vector's length
    bytes.extend(Compact((MAX_CDRS_PER_BATCH + 1) as u32).encode());
    let error = decode_exact::<Transaction>(&bytes).unwrap_err().to_string();
    assert!(error.contains("limit"), "{error}");
    // A call id over 256 bytes is refused.
    let long = "x".repeat(257).encode();
    assert!(decode_exact::<CallId>(&long).is_err());
    // Out-of-range enum values and checked integers are refused.
    assert!(decode_exact::<Disposition>(&[5]).is_err());
    assert!(decode_exact::<Q850Cause>(&[0]).is_err());
    assert!(decode_exact::<Q850Cause>(&[128]).is_err());
    assert!(decode_exact::<SipStatus>(&99u16.encode()).is_err());
    assert!(decode_exact::<Mos>(&501u16.encode()).is_err());
    // An operator id with an upper-case letter cannot sneak in through SCALE.
    assert!(decode_exact::<OperatorId>(&"Alice".to_string().encode()).is_err());
    // A block over the byte limit is refused before decoding.
    assert!(matches!(
        Block::decode_bounded(&vec![0u8; 1_000], 999),
        Err(cdrchain_runtime::block::BlockDecodeError::TooLarge { len: 1_000, max: 999 })
    ));
}
