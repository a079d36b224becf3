//! Joins the facts the workers report about calls ([`What`]) into call
//! records: one JSON line per call attempt, when its caller gets a final
//! answer, and one per BYE.

use edge::records::{Record, What};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Attempts waited on at most: beyond it new ones are not followed (and
/// counted); a flood of INVITEs that are never answered cannot grow the
/// writer without bound.
const MAX_PENDING: usize = 100_000;
/// Answered calls remembered for their duration at most.
const MAX_ANSWERED: usize = 1_000_000;
/// An attempt with no final answer after this long is written as it is
/// (the longest ring, Timer C, is 3 minutes).
const PENDING_FOR: Duration = Duration::from_secs(300);
/// An answered call whose BYE has not passed after this long is
/// forgotten.
const ANSWERED_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long a finished attempt or a BYE is remembered, so that their
/// retransmissions (RFC 3261 Timer H and J: 32 s) write nothing again.
const DONE_FOR: Duration = Duration::from_secs(64);
/// Destinations listed per attempt at most (a transactional edge tries
/// 16 at most; a stateless one one, whatever a caller repeats).
const MAX_TRIED: usize = 16;
/// How often answered calls are swept (there may be many).
const SWEEP_ANSWERED: Duration = Duration::from_secs(10);

/// One call attempt in progress.
struct Attempt {
    start: SystemTime,
    peer: Option<std::sync::Arc<str>>,
    from_user: Box<str>,
    to_user: Box<str>,
    source: String,
    tried: Vec<Tried>,
}

/// One destination an attempt went to.
#[derive(Serialize)]
struct Tried {
    destination: Box<str>,
    /// Its final answer (none: it gave none, it timed out or was
    /// cancelled).
    code: Option<u16>,
    /// From sending the INVITE to its final answer.
    ms: Option<u64>,
    #[serde(skip)]
    sent: SystemTime,
}

/// An answered call, for its end record.
struct Answered {
    at: SystemTime,
    from_user: Box<str>,
    to_user: Box<str>,
}

/// What every line starts with.
#[derive(Serialize)]
struct Head<'a> {
    /// `attempt` or `end`.
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    node: &'a str,
    edge: &'a str,
    call_id: &'a str,
}

/// The line written when an attempt ends.
#[derive(Serialize)]
struct AttemptLine<'a> {
    #[serde(flatten)]
    head: Head<'a>,
    from: &'a str,
    to: &'a str,
    source: &'a str,
    /// The `[[edge.peer]]` it came from.
    peer: Option<&'a str>,
    tried: &'a [Tried],
    /// The caller's final answer (0: dropped unanswered; none: none seen).
    code: Option<u16>,
    setup_ms: Option<u64>,
    /// Why the edge refused the call itself.
    refused: Option<&'a str>,
}

/// The line written when a BYE passes.
#[derive(Serialize)]
struct EndLine<'a> {
    #[serde(flatten)]
    head: Head<'a>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    /// `caller` or `pool`.
    by: &'static str,
    /// From the answer to the BYE, when this node saw the answer.
    duration_s: Option<f64>,
}

/// A call: its edge and Call-ID.
type Key = (std::sync::Arc<str>, Box<str>);

/// The calls this node has seen.
pub struct Calls {
    node: String,
    pending: HashMap<Key, Attempt>,
    answered: HashMap<Key, Answered>,
    /// Attempts finished without an answer, and calls whose BYE passed,
    /// lately: when.
    done: HashMap<Key, SystemTime>,
    ended: HashMap<Key, SystemTime>,
    answered_swept: SystemTime,
    /// Attempts not followed for want of room.
    pub unfollowed: u64,
}

impl Calls {
    /// The calls of node `node`.
    pub fn new(node: &str) -> Calls {
        Calls {
            node: node.to_owned(),
            pending: HashMap::new(),
            answered: HashMap::new(),
            done: HashMap::new(),
            ended: HashMap::new(),
            answered_swept: SystemTime::UNIX_EPOCH,
            unfollowed: 0,
        }
    }

    /// Takes one fact; appends the lines it completes to `out`.
    pub fn take(&mut self, r: Record, out: &mut Vec<u8>) {
        let key = (r.edge, r.call_id);
        match r.what {
            What::Invite {
                from_user,
                to_user,
                source,
                transport,
                peer,
            } => {
                let seen = self.pending.contains_key(&key)
                    || self.answered.contains_key(&key)
                    || self.done.contains_key(&key)
                    || self.ended.contains_key(&key);
                if seen {
                    return; // a retransmission
                }
                if self.pending.len() >= MAX_PENDING {
                    self.unfollowed += 1;
                    return;
                }
                let attempt = Attempt {
                    start: r.at,
                    peer,
                    from_user,
                    to_user,
                    source: format!("{}:{source}", transport.name()),
                    tried: Vec::new(),
                };
                self.pending.insert(key, attempt);
            }
            What::Tried { dest } => {
                let Some(a) = self.pending.get_mut(&key) else {
                    return;
                };
                // Sent again while it waits (a retransmission), or too many.
                let again = a
                    .tried
                    .iter()
                    .any(|t| t.destination == dest && t.code.is_none());
                if !again && a.tried.len() < MAX_TRIED {
                    a.tried.push(Tried {
                        destination: dest,
                        code: None,
                        ms: None,
                        sent: r.at,
                    });
                }
            }
            What::Answered { dest, code } => {
                let Some(a) = self.pending.get_mut(&key) else {
                    return;
                };
                let waiting = a
                    .tried
                    .iter_mut()
                    .rev()
                    .find(|t| t.destination == dest && t.code.is_none());
                if let Some(t) = waiting {
                    t.code = Some(code);
                    t.ms = Some(millis(r.at, t.sent));
                }
            }
            What::Final { code, refused } => {
                let Some(a) = self.pending.remove(&key) else {
                    return;
                };
                self.attempt_line(
                    &key.0,
                    &key.1,
                    &a,
                    Some(code),
                    refused.as_deref(),
                    r.at,
                    out,
                );
                if (200..300).contains(&code) && self.answered.len() < MAX_ANSWERED {
                    let answered = Answered {
                        at: r.at,
                        from_user: a.from_user,
                        to_user: a.to_user,
                    };
                    self.answered.insert(key, answered);
                } else if self.done.len() < MAX_PENDING {
                    self.done.insert(key, r.at);
                }
            }
            What::Bye { from_pool } => {
                if self.ended.contains_key(&key) {
                    return; // a retransmission
                }
                let answered = self.answered.remove(&key);
                let line = EndLine {
                    head: Head {
                        kind: "end",
                        time: rfc3339(r.at),
                        node: &self.node,
                        edge: &key.0,
                        call_id: &key.1,
                    },
                    from: answered.as_ref().map(|a| &*a.from_user),
                    to: answered.as_ref().map(|a| &*a.to_user),
                    by: if from_pool { "pool" } else { "caller" },
                    duration_s: answered.as_ref().map(|a| {
                        let d = r.at.duration_since(a.at).unwrap_or_default();
                        (d.as_secs_f64() * 1000.0).round() / 1000.0
                    }),
                };
                line_to(out, &line);
                if self.ended.len() < MAX_PENDING {
                    self.ended.insert(key, r.at);
                }
            }
        }
    }

    /// Writes the attempts that waited too long for a final answer, and
    /// forgets answered calls whose BYE never came.
    pub fn sweep(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        let old = |at: SystemTime, limit: Duration| now.duration_since(at).is_ok_and(|d| d > limit);
        let stale: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, a)| old(a.start, PENDING_FOR))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(a) = self.pending.remove(&key) {
                self.attempt_line(&key.0, &key.1, &a, None, None, now, out);
            }
        }
        self.done.retain(|_, &mut at| !old(at, DONE_FOR));
        self.ended.retain(|_, &mut at| !old(at, DONE_FOR));
        if old(self.answered_swept, SWEEP_ANSWERED) {
            self.answered_swept = now;
            self.answered.retain(|_, a| !old(a.at, ANSWERED_FOR));
        }
    }

    /// At shutdown: writes every attempt still waiting, as it is.
    pub fn flush(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        let waiting: Vec<_> = self.pending.drain().collect();
        for (key, a) in waiting {
            self.attempt_line(&key.0, &key.1, &a, None, None, now, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt_line(
        &self,
        edge: &str,
        call_id: &str,
        a: &Attempt,
        code: Option<u16>,
        refused: Option<&str>,
        at: SystemTime,
        out: &mut Vec<u8>,
    ) {
        let line = AttemptLine {
            head: Head {
                kind: "attempt",
                time: rfc3339(a.start),
                node: &self.node,
                edge,
                call_id,
            },
            from: &a.from_user,
            to: &a.to_user,
            source: &a.source,
            peer: a.peer.as_deref(),
            tried: &a.tried,
            code,
            setup_ms: code.map(|_| millis(at, a.start)),
            refused,
        };
        line_to(out, &line);
    }
}

fn line_to(out: &mut Vec<u8>, line: &impl Serialize) {
    if serde_json::to_writer(&mut *out, line).is_ok() {
        out.push(b'\n');
    }
}

fn millis(later: SystemTime, earlier: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// UTC, to the millisecond: `2026-12-03T14:05:01.123Z`.
fn rfc3339(at: SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge::flow::Transport;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_306_701_000 + ms)
    }

    fn rec(ms: u64, what: What) -> Record {
        Record {
            at: at(ms),
            edge: Arc::from("e"),
            call_id: Box::from("c1"),
            what,
        }
    }

    /// A new INVITE from a to b.
    fn invite(transport: Transport) -> What {
        What::Invite {
            from_user: "a".into(),
            to_user: "b".into(),
            source: "203.0.113.5:5070".parse().unwrap(),
            transport,
            peer: None,
        }
    }

    fn lines(out: &[u8]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn a_failed_over_call_is_one_attempt_line_and_its_bye_an_end_line() {
        let mut calls = Calls::new("n1");
        let mut out = Vec::new();
        let facts = [
            rec(
                0,
                What::Invite {
                    from_user: "alice".into(),
                    to_user: "bob".into(),
                    source: "203.0.113.5:5070".parse().unwrap(),
                    transport: Transport::Udp,
                    peer: Some("carrier-a".into()),
                },
            ),
            rec(
                1,
                What::Tried {
                    dest: "sip:10.0.0.1".into(),
                },
            ),
            rec(
                11,
                What::Answered {
                    dest: "sip:10.0.0.1".into(),
                    code: 503,
                },
            ),
            rec(
                12,
                What::Tried {
                    dest: "sip:10.0.0.2".into(),
                },
            ),
            rec(
                52,
                What::Answered {
                    dest: "sip:10.0.0.2".into(),
                    code: 200,
                },
            ),
            rec(
                53,
                What::Final {
                    code: 200,
                    refused: None,
                },
            ),
            rec(10_053, What::Bye { from_pool: false }),
        ];
        for f in facts {
            calls.take(f, &mut out);
        }
        let l = lines(&out);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["type"], "attempt");
        assert_eq!(l[0]["time"], "2026-12-03T14:05:01Z");
        assert_eq!(l[0]["from"], "alice");
        assert_eq!(l[0]["source"], "udp:203.0.113.5:5070");
        assert_eq!(l[0]["peer"], "carrier-a");
        assert_eq!(l[0]["code"], 200);
        assert_eq!(l[0]["setup_ms"], 53);
        assert_eq!(l[0]["tried"][0]["code"], 503);
        assert_eq!(l[0]["tried"][0]["ms"], 10);
        assert_eq!(l[0]["tried"][1]["destination"], "sip:10.0.0.2");
        assert_eq!(l[0]["tried"][1]["ms"], 40);
        assert_eq!(l[0]["refused"], serde_json::Value::Null);
        assert_eq!(l[1]["type"], "end");
        assert_eq!(l[1]["duration_s"], 10.0);
        assert_eq!(l[1]["by"], "caller");
        assert_eq!(l[1]["to"], "bob");
    }

    #[test]
    fn a_refusal_says_why_and_an_unanswered_attempt_is_written_at_the_sweep() {
        let mut calls = Calls::new("n1");
        let mut out = Vec::new();
        let invite = || invite(Transport::Tcp);
        calls.take(rec(0, invite()), &mut out);
        calls.take(rec(0, invite()), &mut out); // retransmission
        calls.take(
            rec(
                1,
                What::Final {
                    code: 503,
                    refused: Some("cps".into()),
                },
            ),
            &mut out,
        );
        let mut second = rec(5, invite());
        second.call_id = "c2".into();
        calls.take(second, &mut out);
        calls.sweep(at(5) + PENDING_FOR / 2, &mut out);
        assert_eq!(lines(&out).len(), 1);
        calls.sweep(at(5) + PENDING_FOR * 2, &mut out);
        let l = lines(&out);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["refused"], "cps");
        assert_eq!(l[0]["code"], 503);
        assert_eq!(l[1]["call_id"], "c2");
        assert_eq!(l[1]["code"], serde_json::Value::Null);
        // A BYE of a call this node never saw answered: no duration.
        calls.take(rec(9, What::Bye { from_pool: true }), &mut out);
        let l = lines(&out);
        assert_eq!(l[2]["duration_s"], serde_json::Value::Null);
        assert_eq!(l[2]["by"], "pool");
    }

    #[test]
    fn retransmissions_write_nothing_twice() {
        let mut calls = Calls::new("n1");
        let mut out = Vec::new();
        let invite = || invite(Transport::Udp);
        let facts = [
            rec(0, invite()),
            rec(
                1,
                What::Tried {
                    dest: "sip:10.0.0.1".into(),
                },
            ),
            // Timer A: the same INVITE to the same server again.
            rec(
                501,
                What::Tried {
                    dest: "sip:10.0.0.1".into(),
                },
            ),
            rec(
                600,
                What::Answered {
                    dest: "sip:10.0.0.1".into(),
                    code: 486,
                },
            ),
            rec(
                601,
                What::Final {
                    code: 486,
                    refused: None,
                },
            ),
            // The caller's INVITE again, after its final answer.
            rec(700, invite()),
            rec(
                701,
                What::Final {
                    code: 486,
                    refused: Some("answered".into()),
                },
            ),
        ];
        for f in facts {
            calls.take(f, &mut out);
        }
        let l = lines(&out);
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0]["tried"].as_array().map(Vec::len), Some(1));
        assert_eq!(l[0]["code"], 486);
        // A BYE and its retransmission: one end line.
        calls.take(rec(800, What::Bye { from_pool: false }), &mut out);
        calls.take(rec(1300, What::Bye { from_pool: false }), &mut out);
        assert_eq!(lines(&out).len(), 2);
        // Forgotten after a while: the memory stays bounded.
        calls.sweep(at(0) + DONE_FOR * 2, &mut out);
        assert!(calls.done.is_empty() && calls.ended.is_empty());
    }
}
