//! What a stack's pass does next, decided from what it found — pure functions with table
//! tests, the same for stacks deployed through Portainer and through the guest agent.

use phoenix_crds::common::DriftPolicy;

/// The stack as the swarm (or Portainer) has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// The revision of what is deployed (file and env as Portainer keeps them).
    pub revision: String,
    pub state: LiveState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveState {
    Active,
    /// Stopped in Portainer (`Status` 2).
    Inactive,
    /// A background deploy is running (`Status` 3).
    Deploying,
    /// The last background deploy failed (`Status` 4), with Portainer's message.
    Failed(String),
}

/// What the spec asks for, and what this object deployed before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub revision: &'a str,
    /// The revision this object last deployed (status), if any.
    pub deployed: Option<&'a str>,
    pub drift: DriftPolicy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Create,
    /// Redeploy in place (same stack): `drift` when it undoes a change made by hand.
    Update {
        drift: bool,
    },
    /// Redeploy what failed; the pass then reports the failure and backs off.
    Retry(String),
    /// A deploy is running: look again shortly.
    WaitDeploying,
    /// Changed or removed by hand under `driftPolicy: Report`: only said.
    ReportDrift(String),
    /// Deployed as wanted: look at its services.
    Check,
}

/// The next step for a stack: create what is missing, update what differs (a change by
/// hand is drift, a change of the spec is not), wait for a deploy, retry a failed one.
pub fn next(live: Option<&Live>, wanted: &Wanted) -> Next {
    let report = wanted.drift == DriftPolicy::Report;
    let Some(live) = live else {
        return match wanted.deployed {
            Some(_) if report => Next::ReportDrift("the stack was removed from the swarm".into()),
            _ => Next::Create,
        };
    };
    // Drift: what runs is neither what this object deployed nor what it wants now.
    let by_hand = wanted
        .deployed
        .is_some_and(|d| d != live.revision && wanted.revision != live.revision);
    match &live.state {
        LiveState::Deploying => Next::WaitDeploying,
        LiveState::Failed(message) => Next::Retry(message.clone()),
        LiveState::Inactive if report => Next::ReportDrift("the stack was stopped".into()),
        LiveState::Inactive => Next::Update { drift: true },
        LiveState::Active if live.revision == wanted.revision => Next::Check,
        LiveState::Active if by_hand && report => Next::ReportDrift(format!(
            "the stack runs revision {}, changed by hand (the spec's is {})",
            live.revision, wanted.revision
        )),
        LiveState::Active => Next::Update { drift: by_hand },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DriftPolicy::{Correct, Report};

    fn live(revision: &str, state: LiveState) -> Option<Live> {
        Some(Live {
            revision: revision.into(),
            state,
        })
    }

    #[test]
    fn create_update_wait_retry_and_drift() {
        use LiveState::*;
        let failed = || Failed("No such image: x".into());
        let table: Vec<(Option<Live>, Option<&str>, DriftPolicy, Next)> = vec![
            (None, None, Correct, Next::Create),
            (None, None, Report, Next::Create),
            // Removed by hand after this object deployed it.
            (None, Some("r1"), Correct, Next::Create),
            (
                None,
                Some("r1"),
                Report,
                Next::ReportDrift("the stack was removed from the swarm".into()),
            ),
            (live("r2", Active), Some("r2"), Correct, Next::Check),
            // Found by name after a restart lost the status: taken as is.
            (live("r2", Active), None, Correct, Next::Check),
            (
                live("r1", Active),
                None,
                Report,
                Next::Update { drift: false },
            ),
            // The spec changed since r1 was deployed.
            (
                live("r1", Active),
                Some("r1"),
                Report,
                Next::Update { drift: false },
            ),
            // Someone deployed r9 by hand.
            (
                live("r9", Active),
                Some("r1"),
                Correct,
                Next::Update { drift: true },
            ),
            (
                live("r9", Active),
                Some("r2"),
                Report,
                Next::ReportDrift(
                    "the stack runs revision r9, changed by hand (the spec's is r2)".into(),
                ),
            ),
            (
                live("r2", Deploying),
                Some("r1"),
                Correct,
                Next::WaitDeploying,
            ),
            (
                live("r2", failed()),
                Some("r1"),
                Correct,
                Next::Retry("No such image: x".into()),
            ),
            (
                live("r2", Inactive),
                Some("r2"),
                Correct,
                Next::Update { drift: true },
            ),
            (
                live("r2", Inactive),
                Some("r2"),
                Report,
                Next::ReportDrift("the stack was stopped".into()),
            ),
        ];
        for (found, deployed, drift, expected) in table {
            let wanted = Wanted {
                revision: "r2",
                deployed,
                drift,
            };
            assert_eq!(
                next(found.as_ref(), &wanted),
                expected,
                "{found:?} {deployed:?} {drift:?}"
            );
        }
    }
}
