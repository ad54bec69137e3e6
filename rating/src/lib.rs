//! cdrchain's rating engine (issue #28): interconnect agreements between two operators
//! ([`agreement`], format `cdrchain-agreement` v1), exact money ([`money`]: integers of fixed
//! decimals, rounded once, as the agreement says) and the rating of calls under them ([`rate`]).
//! Pure and deterministic: the same agreement and calls give the same amounts on any machine, so
//! two partners computing a statement get the same bytes.

pub mod agreement;
pub mod money;
pub mod rate;
pub mod statement;

pub use agreement::Agreement;
pub use money::{Amount, Price, RoundingMode};
pub use rate::{Call, Direction, RateError, Rated, Rater};
pub use statement::{Statement, StatementDocument};
