//! Status conditions as Kubernetes tools expect them: one per type, `lastTransitionTime`
//! kept while the status does not change, `observedGeneration` always current.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Sets (or replaces) the condition of `type_`; the transition time moves only when the
/// status flips.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let since = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Ready",
            false,
            "Creating",
            "cloning from 900",
            Some(1),
            t0,
        );
        set(
            &mut conditions,
            "Ready",
            false,
            "Starting",
            "starting",
            Some(1),
            t1,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].last_transition_time.0, t0,
            "still False: the time stays"
        );
        assert_eq!(conditions[0].reason, "Starting");
        set(
            &mut conditions,
            "Ready",
            true,
            "Running",
            "running at 10.0.0.141",
            Some(2),
            t1,
        );
        assert_eq!(
            (
                conditions[0].last_transition_time.0,
                conditions[0].observed_generation
            ),
            (t1, Some(2))
        );
        assert!(is_true(&conditions, "Ready"));
    }
}
