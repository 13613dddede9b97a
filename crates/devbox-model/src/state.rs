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
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Restart => "restart",
            Operation::Delete => "delete",
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
    }
}

/// What the reconciler does with a devbox found in `state` after a restart of
/// the server, given whether its container is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to do: the record and the runtime agree.
    Keep,
    /// The container runs: record the devbox as running.
    Adopt,
    /// Finish creating (prepare its directories), then record it stopped.
    FinishCreate,
    /// Tear the container down (if any) and record the devbox stopped.
    FinishStop,
    /// Tear the container down but keep the error the devbox is in.
    CleanUpError,
    /// Finish deleting everything the devbox owned.
    FinishDelete,
}

/// Pure decision table for [`Recovery`]; see the module docs.
pub fn recover(state: State, container_running: bool) -> Recovery {
    use State::*;
    match (state, container_running) {
        (Creating, _) => Recovery::FinishCreate,
        (Starting | Running, true) => Recovery::Adopt,
        (Starting | Running | Stopping | Committing, _) => Recovery::FinishStop,
        (Stopped, true) => Recovery::FinishStop,
        (Stopped, false) => Recovery::Keep,
        (Error, true) => Recovery::CleanUpError,
        (Error, false) => Recovery::Keep,
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
            ] {
                let e = plan(s, op).unwrap_err();
                assert_eq!((e.op, e.state), (op, s));
                assert!(e.to_string().contains(s.as_str()), "{e}");
            }
        }
    }

    #[test]
    fn recovery_finishes_or_rolls_back() {
        assert_eq!(recover(State::Running, true), Recovery::Adopt);
        assert_eq!(recover(State::Starting, true), Recovery::Adopt);
        assert_eq!(recover(State::Starting, false), Recovery::FinishStop);
        assert_eq!(recover(State::Running, false), Recovery::FinishStop);
        assert_eq!(recover(State::Stopping, true), Recovery::FinishStop);
        assert_eq!(recover(State::Stopped, true), Recovery::FinishStop);
        assert_eq!(recover(State::Stopped, false), Recovery::Keep);
        assert_eq!(recover(State::Creating, false), Recovery::FinishCreate);
        assert_eq!(recover(State::Deleting, true), Recovery::FinishDelete);
        assert_eq!(recover(State::Error, true), Recovery::CleanUpError);
        assert_eq!(recover(State::Error, false), Recovery::Keep);
    }
}
