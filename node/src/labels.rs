//! Label values that records choose (a switch's system id, the operator names a CDR gives):
//! counted under their own name up to a limit and under [`OTHER`] past it, so that a sender of
//! endless names cannot grow the node's counts, or its metrics, without bound.

use std::collections::HashSet;

/// The name under which what is beyond a limit is counted.
pub const OTHER: &str = "other";

/// The names seen so far, at most `max` of them.
#[derive(Debug)]
pub struct BoundedNames {
    names: HashSet<String>,
    max: usize,
}

impl BoundedNames {
    pub fn new(max: usize) -> Self {
        BoundedNames { names: HashSet::new(), max }
    }

    /// Whether `name` is counted under its own name: one already seen, or a new one while there
    /// is room.
    pub fn admit(&mut self, name: &str) -> bool {
        if self.names.contains(name) {
            return true;
        }
        if self.names.len() >= self.max {
            return false;
        }
        self.names.insert(name.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_limit_are_refused_and_known_ones_stay() {
        let mut names = BoundedNames::new(2);
        assert!(names.admit("a") && names.admit("b") && names.admit("a"));
        assert!(!names.admit("c"), "no room");
        assert!(names.admit("b"));
    }
}
