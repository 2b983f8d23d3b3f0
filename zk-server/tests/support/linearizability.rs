//! A Wing–Gong–Lowe linearizability checker: is there an order of a history's operations that
//! respects real time (an operation that returned before another was invoked comes first) and
//! in which a sequential model produces every observed output?
//!
//! Operations whose outcome the client never learned (`ret: None`, e.g. their server crashed)
//! may take effect at any point after their invocation; their output is not checked. The
//! search linearizes one *minimal* operation at a time (one invoked before every pending
//! operation returned), backtracks on a wrong output, and remembers visited (linearized set,
//! model state) pairs so that each is explored once (Lowe's cache).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash;
    /// An operation's input.
    type Input;
    /// An operation's output.
    type Output: PartialEq;
    /// The initial state.
    fn init() -> Self::State;
    /// Applies `input` to `state`: the next state and the output.
    fn step(state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output);
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Op<I, O> {
    /// When it was invoked.
    pub invoke: u64,
    /// When it returned, if the client learned its outcome.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: I,
    /// What was answered (`None` with `ret: None`).
    pub output: Option<O>,
}

/// Whether `history` is linearizable with respect to `M`; `max_states` bounds the search
/// (`None`: it gave up, which a caller should treat as a failure to investigate).
pub fn check<M: Model>(history: &[Op<M::Input, M::Output>], max_states: usize) -> Option<bool> {
    let mut search = Search::<M> {
        ops: history,
        done: vec![false; history.len()],
        remaining: history.iter().filter(|op| op.ret.is_some()).count(),
        seen: HashSet::new(),
        budget: max_states,
    };
    search.dfs(&M::init())
}

struct Search<'a, M: Model> {
    ops: &'a [Op<M::Input, M::Output>],
    done: Vec<bool>,
    /// Completed operations not yet linearized.
    remaining: usize,
    seen: HashSet<(Vec<bool>, M::State)>,
    budget: usize,
}

impl<M: Model> Search<'_, M> {
    fn dfs(&mut self, state: &M::State) -> Option<bool> {
        if self.remaining == 0 {
            // Operations with unknown outcomes may never have taken effect.
            return Some(true);
        }
        if !self.seen.insert((self.done.clone(), state.clone())) {
            return Some(false);
        }
        if self.seen.len() > self.budget {
            return None;
        }
        // The earliest return among pending completed operations: only operations invoked
        // before it can be linearized next.
        let horizon = self
            .ops
            .iter()
            .zip(&self.done)
            .filter(|(_, done)| !**done)
            .filter_map(|(op, _)| op.ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            let op = &self.ops[i];
            if self.done[i] || op.invoke > horizon {
                continue;
            }
            let (next, output) = M::step(state, &op.input);
            if op.output.as_ref().is_some_and(|o| *o != output) {
                continue;
            }
            self.done[i] = true;
            if op.ret.is_some() {
                self.remaining -= 1;
            }
            let found = self.dfs(&next);
            self.done[i] = false;
            if op.ret.is_some() {
                self.remaining += 1;
            }
            match found {
                Some(false) => {}
                other => return other,
            }
        }
        Some(false)
    }
}

/// A register with versions, like a znode's data: writes always succeed, compare-and-set
/// (setData with a version) succeeds only on the expected version; both return the new
/// version or `None` for a version mismatch.
pub struct VersionedRegister;

/// An operation on a [`VersionedRegister`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// Set the value unconditionally.
    Write(u64),
    /// Set the value if the version is `expected`.
    Cas {
        /// The version the client read.
        expected: u64,
        /// The new value.
        value: u64,
    },
}

impl Model for VersionedRegister {
    /// (value, version)
    type State = (u64, u64);
    type Input = RegisterOp;
    /// The new version, or `None` when a CAS found another version.
    type Output = Option<u64>;

    fn init() -> (u64, u64) {
        (0, 0)
    }

    fn step(&(value, version): &(u64, u64), input: &RegisterOp) -> ((u64, u64), Option<u64>) {
        match *input {
            RegisterOp::Write(v) => ((v, version + 1), Some(version + 1)),
            RegisterOp::Cas { expected, value: v } if expected == version => {
                ((v, version + 1), Some(version + 1))
            }
            RegisterOp::Cas { .. } => ((value, version), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        invoke: u64,
        ret: Option<u64>,
        input: RegisterOp,
        output: Option<Option<u64>>,
    ) -> Op<RegisterOp, Option<u64>> {
        Op {
            invoke,
            ret,
            input,
            output,
        }
    }

    const BUDGET: usize = 100_000;

    #[test]
    fn sequential_and_concurrent_histories_that_are_linearizable() {
        // w1 → v1, then CAS(1) → v2.
        let h = [
            op(0, Some(1), RegisterOp::Write(5), Some(Some(1))),
            op(
                2,
                Some(3),
                RegisterOp::Cas {
                    expected: 1,
                    value: 6,
                },
                Some(Some(2)),
            ),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(true));
        // Two overlapping writes may take effect in either order.
        let h = [
            op(0, Some(10), RegisterOp::Write(1), Some(Some(2))),
            op(1, Some(9), RegisterOp::Write(2), Some(Some(1))),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(true));
        // An operation with an unknown outcome may have happened (its effect is seen)…
        let h = [
            op(0, None, RegisterOp::Write(7), None),
            op(
                5,
                Some(6),
                RegisterOp::Cas {
                    expected: 1,
                    value: 8,
                },
                Some(Some(2)),
            ),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(true));
        // …or not.
        let h = [
            op(0, None, RegisterOp::Write(7), None),
            op(
                5,
                Some(6),
                RegisterOp::Cas {
                    expected: 0,
                    value: 8,
                },
                Some(Some(1)),
            ),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(true));
    }

    #[test]
    fn known_bad_histories_are_rejected() {
        // A stale version: the second write returned after the first but claims version 1.
        let h = [
            op(0, Some(1), RegisterOp::Write(1), Some(Some(1))),
            op(2, Some(3), RegisterOp::Write(2), Some(Some(1))),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(false));
        // A lost acknowledged write: the CAS after it still sees version 0.
        let h = [
            op(0, Some(1), RegisterOp::Write(1), Some(Some(1))),
            op(
                2,
                Some(3),
                RegisterOp::Cas {
                    expected: 0,
                    value: 9,
                },
                Some(Some(1)),
            ),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(false));
        // Two CAS on the same version both succeeding (a double grant).
        let h = [
            op(0, Some(1), RegisterOp::Write(1), Some(Some(1))),
            op(
                2,
                Some(5),
                RegisterOp::Cas {
                    expected: 1,
                    value: 2,
                },
                Some(Some(2)),
            ),
            op(
                3,
                Some(6),
                RegisterOp::Cas {
                    expected: 1,
                    value: 3,
                },
                Some(Some(2)),
            ),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(false));
        // Real time: an op that returned before another was invoked cannot come after it.
        let h = [
            op(
                0,
                Some(1),
                RegisterOp::Cas {
                    expected: 1,
                    value: 2,
                },
                Some(Some(2)),
            ),
            op(2, Some(3), RegisterOp::Write(1), Some(Some(1))),
        ];
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(false));
    }

    #[test]
    fn a_long_sequential_history_checks_quickly() {
        let mut h = Vec::new();
        for i in 0..2_000u64 {
            h.push(op(
                2 * i,
                Some(2 * i + 1),
                RegisterOp::Write(i),
                Some(Some(i + 1)),
            ));
        }
        assert_eq!(check::<VersionedRegister>(&h, BUDGET), Some(true));
    }
}
