//! What a guest's pass does next, decided from what it found: pure functions of the
//! observation, the spec's policies and the plan, each a table test (as cert-manager tests
//! its policy chains). `converge.rs` gathers the facts and performs what these return.

use super::Progress;
use super::plan::{self, Step};
use crate::conditions::reason;
use crate::error::Error;
use crate::ownership::Ownership;
use phoenix_clients::proxmox::Params;
use phoenix_crds::common::{DriftPolicy, RestartPolicy};
use phoenix_crds::guest::AdoptionPolicy;
use std::collections::BTreeMap;
use std::time::Duration;

/// How soon to look again after a wait that clears by itself (a PVE lock).
pub const SHORT: Duration = Duration::from_secs(2);
/// How soon to go on after a step done at once (a config write).
pub const AT_ONCE: Duration = Duration::from_millis(100);

/// The guest PVE has for this object's VMID, as far as the decisions need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub node: String,
    pub running: bool,
    pub template: bool,
    pub lock: Option<String>,
    pub ownership: Ownership,
}

/// What the spec says about taking over and being a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intent {
    pub adopt: bool,
    pub template: bool,
}

/// What to do with a guest that exists.
#[derive(Debug)]
pub enum Next {
    /// PVE holds a lock: look again shortly.
    Wait(Progress),
    /// Not ours to touch, or not what the spec can be: a condition, nothing done.
    Refuse(Error),
    /// Unmarked and `adopt: true`: take it over if it matches.
    Adopt,
    /// A converted template: Ready unless its source changed (a rebuild).
    Template,
    /// Ours: bring it to the spec.
    Converge,
}

/// The locks of a guest PVE is still making: its config holds nothing but the lock until
/// the create, clone or restore task writes it, so whose it is cannot be told yet.
const BEING_MADE: [&str; 2] = ["create", "clone"];

/// Ownership first, then PVE's lock and what kind of guest it is. Clones lock a template
/// for their whole copy: that is not a lock to wait for. A guest still being made (our own
/// clone, seen by a pass woken during its task) carries no marker yet: waited for, not
/// refused.
pub fn next(found: &Found, intent: Intent, label: &str) -> Next {
    if let Some(lock) = found.lock.as_deref().filter(|l| BEING_MADE.contains(l))
        && found.ownership == Ownership::Unmarked
        && !found.template
    {
        return Next::Wait(Progress::Waiting {
            reason: reason::LOCKED,
            message: format!(
                "PVE is still making {label} (lock {lock:?}); whose it is is known once its task ends"
            ),
            retry: SHORT,
        });
    }
    match &found.ownership {
        Ownership::Other(owner) => {
            return Next::Refuse(Error::conflict(
                reason::VMID_OWNED_BY_ANOTHER,
                format!("{label} belongs to another Phoenix object (uid {owner})"),
            ));
        }
        Ownership::Unmarked if !intent.adopt => {
            return Next::Refuse(Error::conflict(
                reason::VMID_IN_USE,
                format!(
                    "{label} exists and was not created by Phoenix; set spec.adopt: true to take it over"
                ),
            ));
        }
        _ => {}
    }
    if let Some(lock) = found.lock.as_ref().filter(|_| !found.template) {
        return Next::Wait(Progress::Waiting {
            reason: reason::LOCKED,
            message: format!("PVE holds the lock {lock:?} on {label}; waiting for it to clear"),
            retry: SHORT,
        });
    }
    if found.template && !intent.template {
        return Next::Refuse(Error::spec(
            reason::IS_TEMPLATE,
            format!("{label} is a template; set spec.template: true or use another vmid"),
        ));
    }
    match (&found.ownership, found.template) {
        (Ownership::Unmarked, false) => Next::Adopt,
        (_, true) => Next::Template,
        _ => Next::Converge,
    }
}

/// The spec's policies for changes found on a guest that is ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policies {
    /// This generation's spec was in place before: differences are out-of-band changes.
    pub converged_before: bool,
    pub drift: DriftPolicy,
    pub restart: RestartPolicy,
    pub running: bool,
}

/// What the policies make of the plan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Policed {
    /// The steps still to take.
    pub steps: Vec<Step>,
    /// `driftPolicy: Report`: the differences kept, for the `Drifted` condition.
    pub drifted: Option<String>,
    /// `restartPolicy: Never` held a restart back: the keys waiting for one.
    pub restart_required: Option<String>,
    /// The guest is stopped: changes apply at its next start, nothing waits for a restart.
    pub restart_cleared: bool,
}

/// `driftPolicy: Report` keeps out-of-band changes (reported, not reverted, including the
/// firewall's `unreported` differences); `restartPolicy: Never` keeps the restart out of
/// the plan (reported).
pub fn police(mut steps: Vec<Step>, policies: Policies, unreported: &[String]) -> Policed {
    if policies.converged_before && policies.drift == DriftPolicy::Report {
        let differences: Vec<String> = steps
            .iter()
            .map(|s| s.to_string().replace('\n', " "))
            .chain(unreported.iter().cloned())
            .collect();
        if !differences.is_empty() {
            return Policed {
                drifted: Some(format!(
                    "live state differs from the spec (not corrected, driftPolicy: Report): {}",
                    differences.join("; ")
                )),
                ..Policed::default()
            };
        }
    }
    let mut policed = Policed::default();
    if policies.restart == RestartPolicy::Never && steps.contains(&Step::Restart) {
        steps.retain(|s| *s != Step::Restart);
        let keys: Vec<&str> = plan::changes(&steps)
            .filter(|c| c.needs_restart)
            .map(|c| c.key.as_str())
            .collect();
        policed.restart_required = Some(format!(
            "{} take effect at the next restart (restartPolicy: Never)",
            keys.join(", ")
        ));
    } else if !policies.running {
        policed.restart_cleared = true;
    }
    policed.steps = steps;
    policed
}

/// A template needs its features before conversion when only the final stop and
/// conversion are left to do.
pub fn provisions_before_conversion(steps: &[Step]) -> bool {
    steps
        .iter()
        .all(|s| matches!(s, Step::Stop | Step::Template))
}

/// The keys adoption writes whatever the policy: the ownership marker.
const MARKER_KEYS: [&str; 2] = ["tags", "description"];

/// The config write that takes over an unmarked guest: the marker (tags, description), and
/// under `ApplyLiveChanges` the differences PVE applies live. Refused, naming only the keys
/// (never the foreign guest's values), when the guest differs in anything else — and
/// always when `protection` differs: adoption never lowers (or raises) it.
pub fn adoption(
    steps: &[Step],
    desired: &BTreeMap<String, String>,
    policy: AdoptionPolicy,
    label: &str,
) -> Result<Params, Error> {
    // PVE's `protection` defaults to 0: unset and 0 are the same setting, and adoption
    // never writes it.
    let same_protection = |c: &plan::Change| {
        c.key == "protection" && c.from.as_deref().unwrap_or("0") == c.to.as_deref().unwrap_or("0")
    };
    let changes: Vec<&plan::Change> = plan::changes(steps)
        .filter(|c| !MARKER_KEYS.contains(&c.key.as_str()) && !same_protection(c))
        .collect();
    let refused = |c: &plan::Change| {
        c.key == "protection" || c.needs_restart || policy == AdoptionPolicy::RequireMatch
    };
    let mut differences: Vec<String> = changes
        .iter()
        .filter(|c| refused(c))
        .map(|c| c.key.clone())
        .collect();
    differences.extend(steps.iter().filter_map(|s| match s {
        Step::Configure { .. } | Step::Restart | Step::Start | Step::Stop | Step::Template => None,
        other => Some(other.name().to_lowercase()),
    }));
    if !differences.is_empty() {
        let hint = match policy {
            AdoptionPolicy::RequireMatch => {
                "change the spec to match (or set adoptionPolicy: ApplyLiveChanges)"
            }
            AdoptionPolicy::ApplyLiveChanges => "change the spec to match",
        };
        return Err(Error::conflict(
            reason::ADOPTION_MISMATCH,
            format!(
                "{label} differs from the spec in {}: not adopted; {hint}",
                differences.join(", ")
            ),
        ));
    }
    let marker = MARKER_KEYS
        .iter()
        .filter_map(|k| desired.get(*k).map(|v| (k.to_string(), v.clone())));
    let deletions: Vec<&str> = changes
        .iter()
        .filter(|c| c.to.is_none())
        .map(|c| c.key.as_str())
        .collect();
    Ok(changes
        .iter()
        .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
        .chain(marker)
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .chain((!deletions.is_empty()).then(|| ("delete".to_owned(), deletions.join(","))))
        .collect())
}

/// The parameters of a `Configure` step: the values set, and one `delete` for the keys
/// it removes.
pub fn configure_params(step: &Step) -> Params {
    plan::changes(std::slice::from_ref(step))
        .filter_map(|c| c.to.clone().map(|v| (c.key.clone(), v)))
        .chain(deletions(std::slice::from_ref(step)))
        .collect()
}

/// The `delete` parameter for the keys `steps` remove (none: nothing).
fn deletions(steps: &[Step]) -> Option<(String, String)> {
    let keys: Vec<&str> = plan::changes(steps)
        .filter(|c| c.to.is_none())
        .map(|c| c.key.as_str())
        .collect();
    (!keys.is_empty()).then(|| ("delete".to_owned(), keys.join(",")))
}

/// The event of a `Configure` step: what changed, from what to what — never a value
/// read from a Secret, nor the owner marker.
pub fn configure_event(step: &Step, drift: bool) -> (&'static str, String) {
    let keys: Vec<String> = plan::changes(std::slice::from_ref(step))
        .filter(|c| c.key != "description")
        .filter(|c| !plan::SECRET_KEYS.contains(&c.key.as_str()))
        .map(|c| {
            format!(
                "{} {} → {}",
                c.key,
                c.from.as_deref().unwrap_or("<unset>"),
                c.to.as_deref().unwrap_or("<unset>")
            )
        })
        .collect();
    let (reason, what) = if drift {
        (reason::DRIFT_CORRECTED, "corrected out-of-band changes")
    } else {
        (reason::CONFIGURED, "configured")
    };
    (reason, format!("{what}: {}", keys.join(", ")))
}

/// The Ready reason while a step's task runs.
pub fn step_reason(step: &Step) -> &'static str {
    match step {
        Step::Create { .. } => "Creating",
        Step::Clone { .. } => "Cloning",
        Step::Resize { .. } => "Resizing",
        Step::Start => "Starting",
        Step::Restart => "Restarting",
        Step::Stop => "Stopping",
        Step::Configure { .. } => "Configuring",
        Step::Template => "Converting",
        Step::Download { .. } => "Downloading",
        Step::Destroy => "Rebuilding",
    }
}

/// A converged guest's standing before its addresses are looked at: a template is Ready,
/// a stopped guest (the plan may not start it: drift reported) waits, a running one goes
/// on (`None`).
pub fn settled(found: &Found, label: &str) -> Option<Progress> {
    if found.template {
        return Some(Progress::Ready {
            reason: reason::TEMPLATE,
            message: format!("{label} is a template on {}", found.node),
        });
    }
    (!found.running).then(|| Progress::Waiting {
        reason: reason::STOPPED,
        message: format!("{label} is stopped"),
        retry: Duration::from_secs(60),
    })
}

/// The Ready message of a running guest at its first address.
pub fn running(label: &str, node: &str, ip: Option<&str>) -> Progress {
    let at = ip.map_or_else(|| " (address unknown)".to_owned(), |ip| format!(" at {ip}"));
    Progress::Ready {
        reason: reason::RUNNING,
        message: format!("{label} runs on {node}{at}"),
    }
}

/// What PVE shows of a clone source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneSource {
    /// No guest holds its VMID.
    Missing,
    /// A guest of the other type (a VM for a container, or the reverse).
    OtherType,
    /// A guest of the right type, converted to a template or not.
    Found { template: bool },
}

/// How often a clone whose source exists nowhere looks for it again (an object that
/// builds it wakes the clone at once; one made by hand in PVE is found at this pace).
pub const ABSENT_SOURCE_POLL: Duration = Duration::from_secs(30);

/// Whether a guest may be cloned from `source` now (`None`), waits for it, or cannot be
/// (a permanent error). `coming`: an object of this kind builds a template with that VMID.
/// A source that exists nowhere is a wait, not a stall: a GitOps tool applies a set in any
/// order. `kinds`: (wanted, found) names for the wrong-type message.
pub fn clone_source(
    source: u32,
    seen: CloneSource,
    coming: bool,
    kinds: (&str, &str),
) -> Result<Option<Progress>, Error> {
    let building = || Progress::Waiting {
        reason: reason::WAITING_FOR_CLONE_SOURCE,
        message: format!(
            "clone source {source} is not a template yet; its object is still converging"
        ),
        retry: SHORT,
    };
    match (seen, coming) {
        (CloneSource::Found { template: true }, _) => Ok(None),
        (CloneSource::Missing | CloneSource::Found { .. }, true) => Ok(Some(building())),
        (CloneSource::Missing, false) => Ok(Some(Progress::Waiting {
            reason: reason::CLONE_SOURCE_NOT_FOUND,
            message: format!(
                "clone source {source} does not exist (yet): looked for again every {} s, and at once when an object that builds it reports",
                ABSENT_SOURCE_POLL.as_secs()
            ),
            retry: ABSENT_SOURCE_POLL,
        })),
        (CloneSource::OtherType, _) => Err(Error::spec(
            reason::CLONE_SOURCE_NOT_TEMPLATE,
            format!(
                "clone source {source} is {}, not a {} template",
                kinds.1, kinds.0
            ),
        )),
        (CloneSource::Found { template: false }, false) => Err(Error::spec(
            reason::CLONE_SOURCE_NOT_TEMPLATE,
            format!("clone source {source} is not a template (convert it first)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::plan::Change;

    fn found(ownership: Ownership, template: bool, lock: Option<&str>) -> Found {
        Found {
            node: "pve".into(),
            running: true,
            template,
            lock: lock.map(str::to_owned),
            ownership,
        }
    }

    fn change(key: &str, from: Option<&str>, to: Option<&str>, restart: bool) -> Change {
        Change {
            key: key.into(),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            needs_restart: restart,
        }
    }

    #[test]
    fn next_follows_ownership_then_lock_then_kind() {
        use Ownership::*;
        let mine = Intent {
            adopt: false,
            template: false,
        };
        let adopt = Intent {
            adopt: true,
            ..mine
        };
        let template = Intent {
            template: true,
            ..mine
        };
        let other = || Other("u2".into());
        let table: Vec<(Found, Intent, &str)> = vec![
            (found(Ours, false, None), mine, "Converge"),
            (found(Ours, false, Some("backup")), mine, "Wait:Locked"),
            (found(Ours, true, Some("clone")), template, "Template"),
            (found(Ours, true, None), mine, "Refuse:IsTemplate"),
            (
                found(other(), false, None),
                adopt,
                "Refuse:VmidOwnedByAnother",
            ),
            (
                found(other(), false, Some("backup")),
                mine,
                "Refuse:VmidOwnedByAnother",
            ),
            (found(Unmarked, false, None), mine, "Refuse:VmidInUse"),
            (
                found(Unmarked, false, Some("backup")),
                mine,
                "Refuse:VmidInUse",
            ),
            // A clone or create in flight: the placeholder config holds only the lock.
            (found(Unmarked, false, Some("create")), mine, "Wait:Locked"),
            (found(Unmarked, false, Some("clone")), mine, "Wait:Locked"),
            (found(Unmarked, false, Some("create")), adopt, "Wait:Locked"),
            (
                found(other(), false, Some("create")),
                mine,
                "Refuse:VmidOwnedByAnother",
            ),
            (found(Unmarked, false, None), adopt, "Adopt"),
            (
                found(Unmarked, true, None),
                Intent {
                    adopt: true,
                    template: true,
                },
                "Template",
            ),
        ];
        for (found, intent, expected) in table {
            let got = match next(&found, intent, "CT 801") {
                Next::Wait(p) => format!("Wait:{}", p.reason()),
                Next::Refuse(e) => format!("Refuse:{}", e.category()),
                Next::Adopt => "Adopt".into(),
                Next::Template => "Template".into(),
                Next::Converge => "Converge".into(),
            };
            assert_eq!(got, expected, "{found:?} {intent:?}");
        }
    }

    #[test]
    fn refusals_name_the_guest_and_not_its_config() {
        let Next::Refuse(e) = next(
            &found(Ownership::Unmarked, false, None),
            Intent {
                adopt: false,
                template: false,
            },
            "CT 801",
        ) else {
            panic!("refused")
        };
        assert!(e.is_permanent());
        assert!(e.to_string().starts_with("CT 801 exists"), "{e}");
    }

    #[test]
    fn policies_keep_report_drift_and_hold_restarts() {
        let memory = Step::Configure {
            changes: vec![change("memory", Some("1024"), Some("2048"), true)],
        };
        let steps = vec![memory.clone(), Step::Restart];
        let policies = |converged_before, drift, restart, running| Policies {
            converged_before,
            drift,
            restart,
            running,
        };
        use DriftPolicy::{Correct, Report};
        use RestartPolicy::{IfRequired, Never};
        // (policies, firewall differences, steps left, drifted, restart required, cleared)
        let table = [
            (
                policies(true, Correct, IfRequired, true),
                0,
                2,
                false,
                false,
                false,
            ),
            (
                policies(true, Report, IfRequired, true),
                0,
                0,
                true,
                false,
                false,
            ),
            (
                policies(false, Report, IfRequired, true),
                0,
                2,
                false,
                false,
                false,
            ),
            (
                policies(true, Correct, Never, true),
                0,
                1,
                false,
                true,
                false,
            ),
            (
                policies(true, Correct, IfRequired, false),
                0,
                2,
                false,
                false,
                true,
            ),
            (
                policies(false, Correct, Never, false),
                0,
                1,
                false,
                true,
                false,
            ),
        ];
        for (p, _, left, drifted, restart, cleared) in table {
            let out = police(steps.clone(), p, &[]);
            assert_eq!(out.steps.len(), left, "{p:?}");
            assert_eq!(out.drifted.is_some(), drifted, "{p:?}");
            assert_eq!(out.restart_required.is_some(), restart, "{p:?}");
            assert_eq!(out.restart_cleared, cleared, "{p:?}");
        }
        let held = police(steps.clone(), policies(true, Correct, Never, true), &[]);
        assert_eq!(held.steps, vec![memory]);
        assert_eq!(
            held.restart_required.as_deref(),
            Some("memory take effect at the next restart (restartPolicy: Never)")
        );
        let fw = ["firewall rule 0 differs".to_owned()];
        let reported = police(Vec::new(), policies(true, Report, IfRequired, true), &fw);
        assert!(
            reported
                .drifted
                .unwrap()
                .ends_with("firewall rule 0 differs")
        );
        let nothing = police(Vec::new(), policies(true, Report, IfRequired, true), &[]);
        assert_eq!(nothing, Policed::default());
    }

    #[test]
    fn adoption_changes_nothing_but_the_marker_unless_told_and_never_protection() {
        use AdoptionPolicy::{ApplyLiveChanges, RequireMatch};
        let desired = BTreeMap::from([
            ("tags".to_owned(), "phoenix".to_owned()),
            ("description".to_owned(), "phoenix:uid=u1".to_owned()),
            ("memory".to_owned(), "2048".to_owned()),
        ]);
        let marker_only = Step::Configure {
            changes: vec![
                change("tags", None, Some("phoenix"), false),
                change(
                    "description",
                    Some("by hand"),
                    Some("phoenix:uid=u1"),
                    false,
                ),
            ],
        };
        let live = Step::Configure {
            changes: vec![
                change("swap", Some("0"), Some("512"), false),
                change("mp1", Some("/data"), None, false),
            ],
        };
        let protection = Step::Configure {
            changes: vec![change("protection", Some("1"), Some("0"), false)],
        };
        let restart = Step::Configure {
            changes: vec![change("cores", Some("2"), Some("4"), true)],
        };
        let unset_protection = Step::Configure {
            changes: vec![change("protection", None, Some("0"), false)],
        };
        let create = Step::Create {
            params: BTreeMap::new(),
        };
        let marker = vec![
            ("description".to_owned(), "phoenix:uid=u1".to_owned()),
            ("tags".into(), "phoenix".into()),
        ];
        // (steps, policy, the params written, or the keys named in the refusal)
        let table: Vec<(Vec<Step>, AdoptionPolicy, Result<Params, &str>)> = vec![
            (
                vec![marker_only.clone(), Step::Start],
                RequireMatch,
                Ok(marker.clone()),
            ),
            (vec![live.clone()], RequireMatch, Err("in swap, mp1:")),
            (
                vec![live.clone()],
                ApplyLiveChanges,
                Ok(vec![
                    ("description".to_owned(), "phoenix:uid=u1".to_owned()),
                    ("swap".into(), "512".into()),
                    ("tags".into(), "phoenix".into()),
                    ("delete".into(), "mp1".into()),
                ]),
            ),
            (
                vec![protection.clone()],
                ApplyLiveChanges,
                Err("in protection:"),
            ),
            (vec![protection], RequireMatch, Err("in protection:")),
            (vec![unset_protection], RequireMatch, Ok(marker.clone())),
            (vec![restart], ApplyLiveChanges, Err("in cores:")),
            (vec![create], ApplyLiveChanges, Err("in create:")),
        ];
        for (steps, policy, expected) in table {
            let got = adoption(&steps, &desired, policy, "CT 801");
            match (got, expected) {
                (Ok(params), Ok(want)) => assert_eq!(params, want, "{steps:?}"),
                (Err(e), Err(keys)) => {
                    assert_eq!(e.category(), "AdoptionMismatch");
                    let message = e.to_string();
                    assert!(message.contains(keys), "{message}");
                    // Names only: the foreign guest's values are never printed.
                    assert!(
                        !message.contains("/data") && !message.contains('"'),
                        "{message}"
                    );
                }
                (got, want) => panic!("{steps:?} {policy:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn configure_events_hide_secrets_and_the_marker() {
        let step = Step::Configure {
            changes: vec![
                change("memory", Some("1024"), Some("2048"), false),
                change("sshkeys", Some("old"), Some("ssh-ed25519 AAAA"), false),
                change("description", None, Some("marker"), false),
                change("mp0", Some("/x"), None, false),
            ],
        };
        let (reason, message) = configure_event(&step, false);
        assert_eq!(reason, "Configured");
        assert_eq!(message, "configured: memory 1024 → 2048, mp0 /x → <unset>");
        assert_eq!(configure_event(&step, true).0, "DriftCorrected");
        let params = configure_params(&step);
        assert_eq!(
            params.last().unwrap(),
            &("delete".to_owned(), "mp0".to_owned())
        );
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn settled_guests_by_kind_and_power() {
        let template = found(Ownership::Ours, true, None);
        assert_eq!(settled(&template, "VM 9000").unwrap().reason(), "Template");
        let mut stopped = found(Ownership::Ours, false, None);
        stopped.running = false;
        assert_eq!(settled(&stopped, "CT 801").unwrap().reason(), "Stopped");
        assert!(settled(&found(Ownership::Ours, false, None), "CT 801").is_none());
        assert!(provisions_before_conversion(&[Step::Stop, Step::Template]));
        assert!(!provisions_before_conversion(&[
            Step::Start,
            Step::Template
        ]));
    }

    #[test]
    fn clone_sources_by_what_pve_shows_and_whether_an_object_builds_them() {
        use CloneSource::*;
        let outcome = |seen, coming| match clone_source(900, seen, coming, ("container", "a VM")) {
            Ok(None) => "go",
            Ok(Some(p)) => p.reason(),
            Err(e) if e.is_permanent() => e.category(),
            Err(_) => "transient",
        };
        let table = [
            (Found { template: true }, false, "go"),
            (Found { template: true }, true, "go"),
            (
                Found { template: false },
                true,
                reason::WAITING_FOR_CLONE_SOURCE,
            ),
            (
                Found { template: false },
                false,
                reason::CLONE_SOURCE_NOT_TEMPLATE,
            ),
            (Missing, true, reason::WAITING_FOR_CLONE_SOURCE),
            (Missing, false, reason::CLONE_SOURCE_NOT_FOUND),
            (OtherType, true, reason::CLONE_SOURCE_NOT_TEMPLATE),
            (OtherType, false, reason::CLONE_SOURCE_NOT_TEMPLATE),
        ];
        for (seen, coming, expected) in table {
            assert_eq!(outcome(seen, coming), expected, "{seen:?}, coming {coming}");
        }
    }
}
