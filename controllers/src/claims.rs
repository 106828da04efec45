//! VMID claims: two objects asking for one VMID are a conflict decided by age (the older
//! object keeps it), not a race decided by whichever reaches PVE first.

/// One object's claim on a VMID.
use crate::conditions::{self, reason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub vmid: u32,
    /// `LxcGuest default/step-ca`
    pub owner: String,
    /// RFC 3339 creation time (to the second), then whether the object has been acted on
    /// (has a status), then uid: a total order.
    pub created: String,
    /// The object's controller has already acted on it: of two created in one second, the
    /// one already reconciled keeps its claim (the other could not have been first).
    pub reconciled: bool,
    pub uid: String,
}

/// Whether an object's controller has acted on it, from its status conditions: a status
/// that only says another object holds the VMID does not count, or the loser of a
/// same-second tie would become the winner once refused.
pub fn acted_on(conditions: Option<&[Condition]>) -> bool {
    conditions.is_some_and(|c| {
        conditions::find(c, conditions::READY).is_none_or(|r| r.reason != reason::VMID_CLAIMED)
    })
}

/// The claim that holds `vmid` among `claims`: the oldest.
pub fn holder(vmid: u32, claims: &[Claim]) -> Option<&Claim> {
    claims
        .iter()
        .filter(|c| c.vmid == vmid)
        .min_by_key(|c| (&c.created, !c.reconciled, &c.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(vmid: u32, owner: &str, created: &str, uid: &str) -> Claim {
        Claim {
            vmid,
            owner: owner.into(),
            created: created.into(),
            reconciled: false,
            uid: uid.into(),
        }
    }

    #[test]
    fn the_older_object_holds_the_vmid() {
        let claims = [
            claim(103, "LxcGuest default/new", "2026-11-02T00:00:00Z", "b"),
            claim(103, "LxcGuest default/step-ca", "2026-11-01T00:00:00Z", "c"),
            claim(104, "LxcGuest default/other", "2026-10-01T00:00:00Z", "a"),
        ];
        assert_eq!(
            holder(103, &claims).unwrap().owner,
            "LxcGuest default/step-ca"
        );
        assert_eq!(holder(104, &claims).unwrap().uid, "a");
        assert!(holder(105, &claims).is_none());
        let tie = [
            claim(7, "x", "2026-11-01T00:00:00Z", "b"),
            claim(7, "y", "2026-11-01T00:00:00Z", "a"),
        ];
        assert_eq!(
            holder(7, &tie).unwrap().owner,
            "y",
            "same second: uid decides"
        );
        let mut acted_on = tie.clone();
        acted_on[0].reconciled = true;
        assert_eq!(
            holder(7, &acted_on).unwrap().owner,
            "x",
            "same second: the one already reconciled keeps it"
        );
    }

    #[test]
    fn a_refusal_for_the_claim_is_not_having_acted() {
        let ready = |reason: &str| {
            let mut c = Vec::new();
            conditions::set(
                &mut c,
                conditions::READY,
                false,
                reason,
                "m",
                Some(1),
                jiff::Timestamp::UNIX_EPOCH,
            );
            c
        };
        assert!(!acted_on(None), "no status yet");
        assert!(acted_on(Some(&[])), "a status without Ready");
        assert!(acted_on(Some(&ready(reason::VMID_IN_USE))));
        assert!(
            !acted_on(Some(&ready(reason::VMID_CLAIMED))),
            "the twin refused for the claim must not then win the tie"
        );
    }
}
