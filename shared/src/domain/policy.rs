//! What a track returns: the decision between allow, challenge, review and block (spec 2.3, 7).
//!
//! Today the decision is the action's default outcome, `CHALLENGE`, for every enrolled user.
//! Per-action defaults and rules plug in here (issue 5/6) without touching the track use case.

use super::model::Outcome;

/// What the policy decided, and which rules (none yet) made it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub rule_ids: Vec<String>,
}

/// The outcome for an action when nothing else is configured.
pub const DEFAULT_OUTCOME: Outcome = Outcome::Challenge;

/// Decides the outcome of a track.
///
/// A user with no credential cannot be challenged, so they are allowed and told they are not
/// enrolled (spec 2.3: "A user with no enrolled authenticator gets ALLOW").
pub fn decide(is_enrolled: bool) -> Decision {
    let outcome = if is_enrolled {
        DEFAULT_OUTCOME
    } else {
        Outcome::Allow
    };
    Decision {
        outcome,
        rule_ids: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unenrolled_users_are_allowed_and_enrolled_users_challenged() {
        assert_eq!(decide(false).outcome, Outcome::Allow);
        assert_eq!(decide(true).outcome, Outcome::Challenge);
        assert!(decide(true).rule_ids.is_empty());
    }
}
