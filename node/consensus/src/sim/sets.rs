//! Authority-set changes in the simulator: the seed draws an add, a remove and a key rotation
//! (in a drawn order) approved at drawn heights; each takes effect
//! [`AUTHORITY_CHANGE_DELAY_BLOCKS`] later, as on the chain. A validator learns of a change when
//! it commits the approving height (by consensus or sync, or from its chain when it boots), the
//! way a node reads it from its state; the checkers judge every certificate, vote and piece of
//! evidence against the set in force at its height.

use cdrchain_runtime::governance::AUTHORITY_CHANGE_DELAY_BLOCKS;
use cdrchain_runtime::ids::{Height, OperatorId};
use ed25519_dalek::SigningKey;

use super::rng::Rng;
use super::{Behaviour, World};
use crate::machine::Input;
use crate::messages::Validators;

/// One authority set of a run.
#[derive(Clone, Debug)]
pub(super) struct SimSet {
    /// The height whose commit approved it (0 for the genesis set).
    pub approved_at: u64,
    /// Its first height.
    pub from: u64,
    pub validators: Validators,
    /// Members by node index, with the key each signs with in this set.
    pub members: Vec<(usize, SigningKey)>,
    /// What changed, for reports: `add v4`, `remove v2`, `rotate v0`.
    pub change: String,
}

/// The key of validator `index` in key generation `generation` (0 at genesis, one more per
/// rotation).
pub(super) fn validator_key(index: usize, generation: u64) -> SigningKey {
    let index = (index as u64).to_le_bytes();
    let seed = if generation == 0 {
        blake3::derive_key("cdrchain simulator validator key", &index)
    } else {
        blake3::derive_key("cdrchain simulator rotated key", &[index, generation.to_le_bytes()].concat())
    };
    SigningKey::from_bytes(&seed)
}

fn validators_of(
    genesis: cdrchain_runtime::hash::Hash32,
    ids: &[OperatorId],
    members: &[(usize, SigningKey)],
) -> Option<Validators> {
    let list =
        members.iter().map(|(i, key)| (ids[*i].clone(), cdrchain_runtime::crypto::public_key(key))).collect();
    Validators::new(genesis, list)
}

/// The genesis set of the `n` first validators, then (when `changes`) three drawn changes: an
/// add of validator `n` (honest, an observer until then), a remove that keeps the Byzantine
/// members within f of the set left, and a rotation of one member's key.
pub(super) fn draw_sets(
    rng: &mut Rng,
    ids: &[OperatorId],
    genesis: &Validators,
    n: usize,
    behaviours: &[Behaviour],
    changes: bool,
) -> Vec<SimSet> {
    let genesis_members: Vec<(usize, SigningKey)> = (0..n).map(|i| (i, validator_key(i, 0))).collect();
    let mut sets = vec![SimSet {
        approved_at: 0,
        from: 1,
        validators: genesis.clone(),
        members: genesis_members,
        change: "genesis".to_string(),
    }];
    if !changes {
        return sets;
    }
    let mut kinds = vec![0u8, 1, 2];
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.index(i + 1));
    }
    let mut approved_at = rng.range(1, 4);
    let mut generation = 1;
    for kind in kinds {
        let Some(last) = sets.last() else { break };
        let mut members = last.members.clone();
        let change = match kind {
            0 => {
                members.push((n, validator_key(n, 0)));
                format!("add {}", ids[n])
            }
            1 => {
                let byzantine = |m: &[(usize, SigningKey)]| {
                    m.iter().filter(|(i, _)| behaviours[*i] != Behaviour::Honest).count()
                };
                let left = members.len().saturating_sub(1);
                let f_left = left.saturating_sub(1) / 3;
                let candidates: Vec<usize> = (0..members.len())
                    .filter(|slot| {
                        let mut rest = members.clone();
                        rest.remove(*slot);
                        !rest.is_empty() && byzantine(&rest) <= f_left
                    })
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let (removed, _) = members.remove(candidates[rng.index(candidates.len())]);
                format!("remove {}", ids[removed])
            }
            _ => {
                let slot = rng.index(members.len());
                members[slot].1 = validator_key(members[slot].0, generation);
                generation += 1;
                format!("rotate {}", ids[members[slot].0])
            }
        };
        let Some(validators) = validators_of(*genesis.genesis_hash(), ids, &members) else { continue };
        let from = approved_at + AUTHORITY_CHANGE_DELAY_BLOCKS;
        sets.push(SimSet { approved_at, from, validators, members, change });
        // One change in flight: the next is approved once this one is in force.
        approved_at = from + rng.range(0, 3);
    }
    sets
}

impl World {
    /// The index of the set in force at `height`.
    pub(super) fn set_index_at(&self, height: u64) -> usize {
        self.sets.iter().rposition(|s| s.from <= height).unwrap_or(0)
    }

    pub(super) fn set_at(&self, height: u64) -> &Validators {
        &self.sets[self.set_index_at(height)].validators
    }

    /// Validator `i`'s identity and key in set `set`; `None` if it is not a member.
    pub(super) fn me_in(&self, set: usize, i: usize) -> Option<(OperatorId, SigningKey)> {
        self.sets[set]
            .members
            .iter()
            .find(|(m, _)| *m == i)
            .map(|(_, key)| (self.nodes[i].id.clone(), key.clone()))
    }

    /// The key validator `i` signs with at `height` (its latest if it is not a member then).
    pub(super) fn key_at(&self, i: usize, height: u64) -> SigningKey {
        let set = self.set_index_at(height);
        self.me_in(set, i)
            .map(|(_, key)| key)
            .or_else(|| {
                self.sets
                    .iter()
                    .rev()
                    .find_map(|s| s.members.iter().find(|(m, _)| *m == i).map(|(_, k)| k.clone()))
            })
            .unwrap_or_else(|| self.nodes[i].key.clone())
    }

    /// Tells validator `i`'s machine of the sets approved at `committed` (the chain has just
    /// reached it) or, when booting, of every set approved by then and not yet in force.
    pub(super) fn feed_sets(&mut self, i: usize, committed: u64, booting: bool) {
        let feeds: Vec<Input> = (0..self.sets.len())
            .filter(|s| {
                let set = &self.sets[*s];
                let approved = if booting {
                    set.approved_at <= committed && set.approved_at > 0
                } else {
                    set.approved_at == committed
                };
                approved && set.from > committed + 1
            })
            .map(|s| Input::SetChange {
                from: Height(self.sets[s].from),
                validators: self.sets[s].validators.clone(),
                me: self.me_in(s, i),
            })
            .collect();
        for input in feeds {
            self.input(i, input);
        }
    }
}
