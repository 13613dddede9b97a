//! The lifecycle state machine of a devbox.
//!
//! ```text
//! Creating → Stopped ⇄ Starting → Running → Stopping → Committing → Stopped
//!                 any settled state → Deleting → (gone)
//!                 a failed operation → Error (start or delete it again)
//! ```
//!
//! The server persists the transient state (`Starting`, `Stopping`, ...)
//! before it touches the runtime, so after a crash [`recover`] can tell from
//! the persisted state and what the runtime reports how to finish or undo the
//! operation that was cut short.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a devbox is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Creating,
    Stopped,
    Starting,
    Running,
    Stopping,
    Committing,
    Error,
    Deleting,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 8] = [
        State::Creating,
        State::Stopped,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Committing,
        State::Error,
        State::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Committing => "committing",
            State::Error => "error",
            State::Deleting => "deleting",
        }
    }

    /// True while an operation is under way; no other operation may begin.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            State::Creating
                | State::Starting
                | State::Stopping
                | State::Committing
                | State::Deleting
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored text did not name a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown devbox state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// An operation a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Start,
    Stop,
    Restart,
    Delete,
    /// Changing settings: no transition of its own, but not while another
    /// operation is under way.
    Update,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Restart => "restart",
            Operation::Delete => "delete",
            Operation::Update => "update",
        })
    }
}

/// What the server does for an operation asked in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The devbox is already where the operation would take it.
    Noop,
    /// Persist this transient state, then do the work.
    Begin(State),
}

/// The operation conflicts with the state the devbox is in (HTTP 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} devbox while it is {state}; try again when it is {}", settled_hint(*state))]
pub struct TransitionError {
    pub op: Operation,
    pub state: State,
}

fn settled_hint(state: State) -> &'static str {
    match state {
        State::Creating | State::Stopping | State::Committing => "stopped",
        State::Starting => "running",
        State::Deleting => "gone",
        State::Stopped | State::Running | State::Error => "settled",
    }
}

/// Decides what `op` means in `state`: nothing to do, a transition to begin,
/// or a conflict. Operations are idempotent: asking for the state a devbox is
/// already in is a no-op, never an error.
pub fn plan(state: State, op: Operation) -> Result<Plan, TransitionError> {
    use State::*;
    let conflict = Err(TransitionError { op, state });
    match (op, state) {
        (_, Creating | Starting | Stopping | Committing | Deleting) => conflict,
        (Operation::Start, Running) => Ok(Plan::Noop),
        (Operation::Start, Stopped | Error) => Ok(Plan::Begin(Starting)),
        (Operation::Stop, Stopped) => Ok(Plan::Noop),
        (Operation::Stop, Running | Error) => Ok(Plan::Begin(Stopping)),
        (Operation::Restart, Running) => Ok(Plan::Begin(Stopping)),
        (Operation::Restart, Stopped | Error) => Ok(Plan::Begin(Starting)),
        (Operation::Delete, Stopped | Running | Error) => Ok(Plan::Begin(Deleting)),
        (Operation::Update, Stopped | Running | Error) => Ok(Plan::Noop),
    }
}

/// What the runtime reports of a devbox's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observed {
    /// It runs.
    Running,
    /// It exists, but its init has ended.
    Exited,
    /// There is none.
    Absent,
}

impl Observed {
    pub const ALL: [Observed; 3] = [Observed::Running, Observed::Exited, Observed::Absent];
}

/// What the reconciler does with a devbox whose record says `state` while
/// the runtime reports its container as observed, both at boot (after a
/// crash cut operations short) and while the server runs (when a container
/// ends on its own). The reconciler holds the devbox's lock, so a transient
/// state always means an operation that was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to do: the record and the runtime agree.
    Keep,
    /// The container runs: a start cut short succeeded; record it running.
    Adopt,
    /// The container of a running devbox ended on its own: tear it down and
    /// record the devbox stopped, saying why.
    Ended,
    /// Finish creating, then record it stopped.
    FinishCreate,
    /// Tear the container down (if any) and record the devbox stopped.
    FinishStop,
    /// Tear the container down but keep the error the devbox is in.
    CleanUpError,
    /// Finish deleting everything the devbox owned.
    FinishDelete,
}

/// Pure decision table for [`Recovery`]; see the module docs.
pub fn recover(state: State, observed: Observed) -> Recovery {
    use Observed as O;
    use State::*;
    match (state, observed) {
        (Creating, _) => Recovery::FinishCreate,
        (Starting, O::Running) => Recovery::Adopt,
        (Running, O::Running) => Recovery::Keep,
        (Running, O::Exited | O::Absent) => Recovery::Ended,
        (Starting | Stopping | Committing, _) => Recovery::FinishStop,
        (Stopped, O::Running | O::Exited) => Recovery::FinishStop,
        (Stopped, O::Absent) => Recovery::Keep,
        (Error, O::Running | O::Exited) => Recovery::CleanUpError,
        (Error, O::Absent) => Recovery::Keep,
        (Deleting, _) => Recovery::FinishDelete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
        assert!("paused".parse::<State>().is_err());
    }

    #[test]
    fn operations_are_idempotent() {
        assert_eq!(plan(State::Running, Operation::Start), Ok(Plan::Noop));
        assert_eq!(plan(State::Stopped, Operation::Stop), Ok(Plan::Noop));
    }

    #[test]
    fn updates_need_no_transition_in_a_settled_state() {
        for s in [State::Stopped, State::Running, State::Error] {
            assert_eq!(plan(s, Operation::Update), Ok(Plan::Noop));
        }
    }

    #[test]
    fn settled_states_begin_transitions() {
        assert_eq!(
            plan(State::Stopped, Operation::Start),
            Ok(Plan::Begin(State::Starting))
        );
        assert_eq!(
            plan(State::Error, Operation::Start),
            Ok(Plan::Begin(State::Starting))
        );
        assert_eq!(
            plan(State::Running, Operation::Stop),
            Ok(Plan::Begin(State::Stopping))
        );
        assert_eq!(
            plan(State::Running, Operation::Restart),
            Ok(Plan::Begin(State::Stopping))
        );
        assert_eq!(
            plan(State::Stopped, Operation::Restart),
            Ok(Plan::Begin(State::Starting))
        );
        for s in [State::Stopped, State::Running, State::Error] {
            assert_eq!(plan(s, Operation::Delete), Ok(Plan::Begin(State::Deleting)));
        }
    }

    #[test]
    fn every_operation_conflicts_with_every_transient_state() {
        for s in State::ALL.into_iter().filter(|s| s.is_transient()) {
            for op in [
                Operation::Start,
                Operation::Stop,
                Operation::Restart,
                Operation::Delete,
                Operation::Update,
            ] {
                let e = plan(s, op).unwrap_err();
                assert_eq!((e.op, e.state), (op, s));
                assert!(e.to_string().contains(s.as_str()), "{e}");
            }
        }
    }

    #[test]
    fn recovery_covers_every_recorded_and_observed_state() {
        use Observed as O;
        use Recovery as R;
        use State::*;
        let table = [
            (Creating, O::Running, R::FinishCreate),
            (Creating, O::Exited, R::FinishCreate),
            (Creating, O::Absent, R::FinishCreate),
            (Stopped, O::Running, R::FinishStop),
            (Stopped, O::Exited, R::FinishStop),
            (Stopped, O::Absent, R::Keep),
            (Starting, O::Running, R::Adopt),
            (Starting, O::Exited, R::FinishStop),
            (Starting, O::Absent, R::FinishStop),
            (Running, O::Running, R::Keep),
            (Running, O::Exited, R::Ended),
            (Running, O::Absent, R::Ended),
            (Stopping, O::Running, R::FinishStop),
            (Stopping, O::Exited, R::FinishStop),
            (Stopping, O::Absent, R::FinishStop),
            (Committing, O::Running, R::FinishStop),
            (Committing, O::Exited, R::FinishStop),
            (Committing, O::Absent, R::FinishStop),
            (Error, O::Running, R::CleanUpError),
            (Error, O::Exited, R::CleanUpError),
            (Error, O::Absent, R::Keep),
            (Deleting, O::Running, R::FinishDelete),
            (Deleting, O::Exited, R::FinishDelete),
            (Deleting, O::Absent, R::FinishDelete),
        ];
        assert_eq!(table.len(), State::ALL.len() * Observed::ALL.len());
        for s in State::ALL {
            for o in Observed::ALL {
                let expected = table
                    .iter()
                    .find(|(ts, to, _)| *ts == s && *to == o)
                    .map(|(_, _, r)| *r)
                    .unwrap_or_else(|| panic!("({s}, {o:?}) missing from the table"));
                assert_eq!(recover(s, o), expected, "({s}, {o:?})");
            }
        }
    }

    #[test]
    fn a_settled_record_that_agrees_with_the_runtime_is_kept() {
        assert_eq!(recover(State::Running, Observed::Running), Recovery::Keep);
        assert_eq!(recover(State::Stopped, Observed::Absent), Recovery::Keep);
        assert_eq!(recover(State::Error, Observed::Absent), Recovery::Keep);
    }
}
