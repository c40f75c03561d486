//! The election as a pure state machine: what to ask etcd next, and what
//! each answer means for this agent's role. No I/O, no clock: the ha thread
//! passes the monotonic time in and carries the calls out
//! (`ha::etcd`), the way `Watchdog::evaluate` is driven.
//!
//! The rules (docs/ARCHITECTURE.md, "Failover"):
//! - a lease is granted, then kept alive every third of its TTL;
//! - every agent campaigns with one transaction on the leader key (create
//!   it with our lease if it does not exist, else read its holder): a
//!   standby every `campaign_every` (250 ms), so it wins within a fraction
//!   of a second of the old lease's expiry; the leader at each keep-alive,
//!   which also proves the key is still ours;
//! - the key's `create_revision` is the leadership's epoch;
//! - **fencing**: a leader whose last successful renewal *started* more
//!   than half a TTL ago, on its own monotonic clock, stops being leader at
//!   once, whatever etcd says or does not say. Its lease cannot have
//!   expired before then (etcd counts the TTL from when it received the
//!   renewal, which is later), so no standby can have won yet;
//! - a fenced agent drops its lease (revoking it once etcd answers) and
//!   campaigns again with a new one;
//! - stepping down: fence, revoke (which deletes the key), and stay quiet
//!   for two TTLs so the standby wins.

use crate::clock::Mono;
use std::time::Duration;

/// A lease id, as etcd numbers them.
pub type LeaseId = i64;

/// One call to etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Grant,
    KeepAlive(LeaseId),
    Campaign(LeaseId),
    Revoke(LeaseId),
}

/// What the leader key holds, when a campaign did not create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub lease: LeaseId,
    pub epoch: i64,
}

/// etcd's answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Granted {
        lease: LeaseId,
        ttl: Duration,
    },
    /// `ttl_left` zero: the lease is gone (expired or revoked).
    KeptAlive {
        ttl_left: Duration,
    },
    /// The transaction created the key with our lease at this revision.
    Won {
        epoch: i64,
    },
    /// The key exists; this is who holds it.
    Held(Holder),
    Revoked,
    /// etcd could not be reached or refused the call.
    Failed(String),
}

/// This agent's part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No answer from etcd yet.
    Starting,
    Leader {
        epoch: i64,
    },
    /// Another agent holds the key (`holder` None: nobody holds it and our
    /// campaign has not won yet).
    Standby {
        holder: Option<Holder>,
    },
}

impl Role {
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Leader { .. } => "leader",
            Role::Standby { .. } => "standby",
        }
    }
}

/// Why a leader stopped leading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FenceReason {
    /// No renewal succeeded within half the TTL.
    NotRenewed { since: Duration },
    /// etcd says the lease is gone.
    LeaseLost,
    /// Another agent holds the key.
    KeyLost { holder: String },
    /// `brokerguard ha step-down`.
    SteppedDown,
}

impl std::fmt::Display for FenceReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FenceReason::NotRenewed { since } => write!(
                f,
                "the lease was not renewed for {} (half its TTL): etcd may already be counting it down",
                crate::timefmt::human(*since)
            ),
            FenceReason::LeaseLost => f.write_str("etcd says the lease is gone"),
            FenceReason::KeyLost { holder } => {
                write!(f, "the leader key is held by {holder}")
            }
            FenceReason::SteppedDown => f.write_str("stepped down (brokerguard ha step-down)"),
        }
    }
}

/// A change the ha thread publishes (role, alerts, the fence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// We hold the key. `took_over_from`: the holder we last saw, if
    /// another node (an `ha_takeover`).
    Leader {
        epoch: i64,
        took_over_from: Option<String>,
    },
    /// We lead no more: stop every private feed now.
    Fenced(FenceReason),
    /// Another holder (or none) seen while we are not leader.
    Standby { holder: Option<Holder> },
    /// etcd stopped answering (once per outage).
    Unreachable { error: String },
    /// etcd answers again.
    Reachable { after: Duration },
}

#[derive(Clone, Debug)]
pub struct Election {
    node: String,
    ttl: Duration,
    campaign_every: Duration,
    role: Role,
    lease: Option<LeaseId>,
    /// When the last successful grant or keep-alive was *sent*.
    renewed_at: Option<Mono>,
    next_keepalive: Mono,
    next_campaign: Mono,
    /// A lease that must be revoked before we campaign again (fenced or
    /// stepped down).
    to_revoke: Option<LeaseId>,
    /// After stepping down: no campaign before this.
    quiet_until: Option<Mono>,
    /// Since when etcd has failed every call.
    failing_since: Option<Mono>,
    /// The other holder last seen (for `ha_takeover`).
    last_other: Option<String>,
    /// A leader's keep-alive succeeded: its campaign (which reads the key
    /// back) is due, proving the key is still ours.
    verify: bool,
}

/// How soon a failed call is tried again.
pub const RETRY_AFTER: Duration = Duration::from_millis(250);

impl Election {
    pub fn new(node: &str, ttl: Duration, campaign_every: Duration, now: Mono) -> Election {
        Election {
            node: node.to_string(),
            ttl,
            campaign_every,
            role: Role::Starting,
            lease: None,
            renewed_at: None,
            next_keepalive: now,
            next_campaign: now,
            to_revoke: None,
            quiet_until: None,
            failing_since: None,
            last_other: None,
            verify: false,
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn lease(&self) -> Option<LeaseId> {
        self.lease
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Until when private sessions may act: half a TTL after the last
    /// renewal was sent, while leader; `None` (closed) otherwise.
    pub fn fence_open_until(&self) -> Option<Mono> {
        match (&self.role, self.renewed_at) {
            (Role::Leader { .. }, Some(at)) => Some(at.plus(self.ttl / 2)),
            _ => None,
        }
    }

    /// The call due at `now`, if any.
    pub fn next_call(&self, now: Mono) -> Option<Call> {
        if let Some(old) = self.to_revoke {
            return Some(Call::Revoke(old));
        }
        let Some(lease) = self.lease else {
            return (now >= self.next_keepalive).then_some(Call::Grant);
        };
        if now >= self.next_keepalive {
            return Some(Call::KeepAlive(lease));
        }
        if self.role.is_leader() {
            return self.verify.then_some(Call::Campaign(lease));
        }
        let quiet = self.quiet_until.is_some_and(|q| now < q);
        (!quiet && now >= self.next_campaign).then_some(Call::Campaign(lease))
    }

    /// When something is next due (a call, or the fence's deadline).
    pub fn wake_at(&self, now: Mono) -> Mono {
        let mut at = self.next_keepalive;
        if self.to_revoke.is_some() || (self.verify && self.role.is_leader()) {
            at = now;
        }
        if self.lease.is_some() && !self.role.is_leader() {
            let campaign = self.next_campaign.max(self.quiet_until.unwrap_or_default());
            at = at.min(campaign);
        }
        if let Some(fence) = self.fence_open_until() {
            at = at.min(fence);
        }
        at.max(now)
    }

    /// Fences a leader whose lease is no longer provably its own at `now`.
    pub fn tick(&mut self, now: Mono) -> Vec<Change> {
        if let (Role::Leader { .. }, Some(at)) = (&self.role, self.renewed_at) {
            let since = now.since(at);
            if since >= self.ttl / 2 {
                return self.fence(FenceReason::NotRenewed { since }, now);
            }
        }
        Vec::new()
    }

    /// A planned hand-over: fence, revoke, stay quiet for two TTLs.
    pub fn step_down(&mut self, now: Mono) -> Vec<Change> {
        if !self.role.is_leader() {
            return Vec::new();
        }
        self.quiet_until = Some(now.plus(self.ttl * 2));
        self.fence(FenceReason::SteppedDown, now)
    }

    fn fence(&mut self, reason: FenceReason, now: Mono) -> Vec<Change> {
        self.role = Role::Standby { holder: None };
        // The lease may still hold the key: revoke it once etcd answers,
        // then campaign with a new one.
        self.to_revoke = self.lease.take();
        self.renewed_at = None;
        self.next_keepalive = now;
        self.next_campaign = now;
        vec![Change::Fenced(reason)]
    }

    /// etcd's answer to `call`, sent at `sent` and received at `now`.
    pub fn answer(&mut self, call: Call, sent: Mono, answer: Answer, now: Mono) -> Vec<Change> {
        let mut out = Vec::new();
        if let Answer::Failed(error) = &answer {
            if self.failing_since.is_none() {
                self.failing_since = Some(sent);
                out.push(Change::Unreachable {
                    error: error.clone(),
                });
            }
            match call {
                Call::Grant | Call::KeepAlive(_) => self.next_keepalive = now.plus(RETRY_AFTER),
                Call::Campaign(_) => self.next_campaign = now.plus(RETRY_AFTER),
                // Try again later; a revoked-or-not lease expires by itself.
                Call::Revoke(_) => {
                    self.to_revoke = None;
                    self.next_keepalive = now.plus(RETRY_AFTER);
                }
            }
            out.extend(self.tick(now));
            return out;
        }
        if let Some(since) = self.failing_since.take() {
            out.push(Change::Reachable {
                after: now.since(since),
            });
        }
        match (call, answer) {
            (Call::Revoke(_), _) => {
                self.to_revoke = None;
                self.next_keepalive = now;
            }
            (Call::Grant, Answer::Granted { lease, ttl }) => {
                self.lease = Some(lease);
                self.ttl = ttl;
                self.renewed_at = Some(sent);
                self.next_keepalive = sent.plus(ttl / 3);
                self.next_campaign = now;
            }
            (Call::KeepAlive(id), Answer::KeptAlive { ttl_left }) if Some(id) == self.lease => {
                if ttl_left.is_zero() {
                    let was_leader = self.role.is_leader();
                    self.lease = None;
                    self.renewed_at = None;
                    self.next_keepalive = now;
                    if was_leader {
                        out.extend(self.fence(FenceReason::LeaseLost, now));
                        // The lease is gone already: nothing to revoke.
                        self.to_revoke = None;
                    }
                } else {
                    self.renewed_at = Some(sent);
                    self.next_keepalive = sent.plus(self.ttl / 3);
                    // The leader's campaign proves the key is still ours.
                    self.verify = self.role.is_leader();
                }
            }
            (Call::Campaign(id), answer) if Some(id) == self.lease => {
                self.next_campaign = now.plus(self.campaign_every);
                out.extend(self.campaigned(id, answer, now));
            }
            _ => {}
        }
        out
    }

    fn campaigned(&mut self, lease: LeaseId, answer: Answer, now: Mono) -> Vec<Change> {
        self.verify = false;
        let fresh = self
            .renewed_at
            .is_some_and(|at| now.since(at) < self.ttl / 2);
        let holder = match answer {
            Answer::Won { epoch } => Holder {
                node: self.node.clone(),
                lease,
                epoch,
            },
            Answer::Held(h) => h,
            _ => return Vec::new(),
        };
        if holder.lease == lease {
            if !fresh {
                // Our key, but we cannot prove the lease still runs: the
                // next keep-alive decides.
                return Vec::new();
            }
            if let Role::Leader { epoch } = self.role {
                if epoch == holder.epoch {
                    return Vec::new();
                }
            }
            self.role = Role::Leader {
                epoch: holder.epoch,
            };
            self.quiet_until = None;
            return vec![Change::Leader {
                epoch: holder.epoch,
                took_over_from: self.last_other.take(),
            }];
        }
        if self.role.is_leader() {
            let node = holder.node.clone();
            let mut out = self.fence(FenceReason::KeyLost { holder: node }, now);
            self.last_other = Some(holder.node.clone());
            self.role = Role::Standby {
                holder: Some(holder.clone()),
            };
            out.push(Change::Standby {
                holder: Some(holder),
            });
            return out;
        }
        self.last_other = Some(holder.node.clone());
        let changed = !matches!(&self.role, Role::Standby { holder: Some(h) } if *h == holder);
        self.role = Role::Standby {
            holder: Some(holder.clone()),
        };
        if changed {
            vec![Change::Standby {
                holder: Some(holder),
            }]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Mono {
        Mono(Duration::from_millis(n))
    }

    fn election() -> Election {
        Election::new("a", TTL, Duration::from_millis(250), ms(0))
    }

    /// Grants lease 7 at `t` and wins the campaign right after.
    fn leader_at(t: u64) -> Election {
        let mut e = election();
        assert_eq!(e.next_call(ms(t)), Some(Call::Grant));
        e.answer(
            Call::Grant,
            ms(t),
            Answer::Granted { lease: 7, ttl: TTL },
            ms(t + 5),
        );
        assert_eq!(e.next_call(ms(t + 5)), Some(Call::Campaign(7)));
        let c = e.answer(
            Call::Campaign(7),
            ms(t + 5),
            Answer::Won { epoch: 42 },
            ms(t + 9),
        );
        assert_eq!(
            c,
            vec![Change::Leader {
                epoch: 42,
                took_over_from: None
            }]
        );
        e
    }

    fn held_by_b(epoch: i64) -> Answer {
        Answer::Held(Holder {
            node: "b".into(),
            lease: 99,
            epoch,
        })
    }

    #[test]
    fn grant_then_campaign_wins_and_opens_the_fence_for_half_a_ttl() {
        let e = leader_at(0);
        assert_eq!(e.role(), &Role::Leader { epoch: 42 });
        assert_eq!(e.fence_open_until(), Some(ms(5_000)));
        // Keep-alive every third of the TTL, nothing before.
        assert_eq!(e.next_call(ms(3_000)), None);
        assert_eq!(e.next_call(ms(3_334)), Some(Call::KeepAlive(7)));
    }

    #[test]
    fn a_leader_renews_verifies_its_key_and_stays_leader() {
        let mut e = leader_at(0);
        let c = e.answer(
            Call::KeepAlive(7),
            ms(3_400),
            Answer::KeptAlive { ttl_left: TTL },
            ms(3_410),
        );
        assert!(c.is_empty());
        assert_eq!(e.fence_open_until(), Some(ms(8_400)));
        assert_eq!(e.next_call(ms(3_410)), Some(Call::Campaign(7)));
        let same = Answer::Held(Holder {
            node: "a".into(),
            lease: 7,
            epoch: 42,
        });
        assert!(
            e.answer(Call::Campaign(7), ms(3_410), same, ms(3_420))
                .is_empty()
        );
        assert_eq!(e.next_call(ms(3_420)), None);
    }

    #[test]
    fn a_leader_that_cannot_renew_fences_itself_at_half_the_ttl() {
        let mut e = leader_at(0);
        // etcd stops answering at the first keep-alive.
        let c = e.answer(
            Call::KeepAlive(7),
            ms(3_333),
            Answer::Failed("refused".into()),
            ms(3_334),
        );
        assert_eq!(
            c,
            vec![Change::Unreachable {
                error: "refused".into()
            }]
        );
        assert!(e.role().is_leader());
        assert!(e.tick(ms(4_999)).is_empty());
        let c = e.tick(ms(5_000));
        assert!(
            matches!(&c[..], [Change::Fenced(FenceReason::NotRenewed { .. })]),
            "{c:?}"
        );
        assert!(!e.role().is_leader());
        assert_eq!(e.fence_open_until(), None);
        // Once etcd answers: revoke the old lease, then a new one, then campaign.
        assert_eq!(e.next_call(ms(5_001)), Some(Call::Revoke(7)));
        let c = e.answer(Call::Revoke(7), ms(9_000), Answer::Revoked, ms(9_001));
        assert!(matches!(&c[..], [Change::Reachable { .. }]), "{c:?}");
        assert_eq!(e.next_call(ms(9_001)), Some(Call::Grant));
    }

    #[test]
    fn a_paused_leader_is_fenced_by_the_clock_alone() {
        // No answer at all between 0 and 60 s (SIGSTOP): the first tick
        // after waking fences, before any call is made.
        let mut e = leader_at(0);
        let c = e.tick(ms(60_000));
        assert!(matches!(&c[..], [Change::Fenced(_)]), "{c:?}");
        assert_eq!(e.fence_open_until(), None);
    }

    #[test]
    fn a_standby_campaigns_every_250ms_and_takes_over_when_the_key_is_free() {
        let mut e = election();
        e.answer(
            Call::Grant,
            ms(0),
            Answer::Granted { lease: 8, ttl: TTL },
            ms(1),
        );
        let c = e.answer(Call::Campaign(8), ms(1), held_by_b(5), ms(2));
        assert!(matches!(&c[..], [Change::Standby { holder: Some(h) }] if h.node == "b"));
        assert_eq!(e.fence_open_until(), None);
        assert_eq!(e.next_call(ms(200)), None);
        assert_eq!(e.next_call(ms(252)), Some(Call::Campaign(8)));
        // The same holder again: nothing to publish.
        assert!(
            e.answer(Call::Campaign(8), ms(252), held_by_b(5), ms(253))
                .is_empty()
        );
        let c = e.answer(
            Call::Campaign(8),
            ms(503),
            Answer::Won { epoch: 77 },
            ms(504),
        );
        assert_eq!(
            c,
            vec![Change::Leader {
                epoch: 77,
                took_over_from: Some("b".into())
            }]
        );
    }

    #[test]
    fn a_leader_that_finds_another_holder_fences_at_once() {
        let mut e = leader_at(0);
        e.answer(
            Call::KeepAlive(7),
            ms(3_400),
            Answer::KeptAlive { ttl_left: TTL },
            ms(3_410),
        );
        let c = e.answer(Call::Campaign(7), ms(3_410), held_by_b(50), ms(3_420));
        assert!(
            matches!(&c[0], Change::Fenced(FenceReason::KeyLost { holder }) if holder == "b"),
            "{c:?}"
        );
        assert!(!e.role().is_leader());
    }

    #[test]
    fn a_lost_lease_fences_and_is_not_revoked() {
        let mut e = leader_at(0);
        let c = e.answer(
            Call::KeepAlive(7),
            ms(3_400),
            Answer::KeptAlive {
                ttl_left: Duration::ZERO,
            },
            ms(3_410),
        );
        assert_eq!(c, vec![Change::Fenced(FenceReason::LeaseLost)]);
        assert_eq!(e.next_call(ms(3_410)), Some(Call::Grant));
    }

    #[test]
    fn stepping_down_fences_revokes_and_stays_quiet_for_two_ttls() {
        let mut e = leader_at(0);
        let c = e.step_down(ms(1_000));
        assert_eq!(c, vec![Change::Fenced(FenceReason::SteppedDown)]);
        assert_eq!(e.next_call(ms(1_000)), Some(Call::Revoke(7)));
        e.answer(Call::Revoke(7), ms(1_000), Answer::Revoked, ms(1_010));
        assert_eq!(e.next_call(ms(1_010)), Some(Call::Grant));
        e.answer(
            Call::Grant,
            ms(1_010),
            Answer::Granted { lease: 9, ttl: TTL },
            ms(1_020),
        );
        assert_eq!(e.next_call(ms(1_020)), None, "quiet after stepping down");
        assert_eq!(
            e.next_call(ms(4_400)),
            Some(Call::KeepAlive(9)),
            "the lease is kept"
        );
        e.answer(
            Call::KeepAlive(9),
            ms(20_000),
            Answer::KeptAlive { ttl_left: TTL },
            ms(20_001),
        );
        assert_eq!(e.next_call(ms(20_002)), None, "still quiet");
        assert_eq!(e.next_call(ms(21_020)), Some(Call::Campaign(9)));
        assert!(
            e.step_down(ms(21_000)).is_empty(),
            "only a leader steps down"
        );
    }

    #[test]
    fn a_campaign_won_on_a_stale_lease_does_not_make_a_leader() {
        let mut e = election();
        e.answer(
            Call::Grant,
            ms(0),
            Answer::Granted { lease: 8, ttl: TTL },
            ms(1),
        );
        // The answer took longer than half the TTL to come back.
        let c = e.answer(
            Call::Campaign(8),
            ms(1),
            Answer::Won { epoch: 3 },
            ms(6_000),
        );
        assert!(c.is_empty(), "{c:?}");
        assert!(!e.role().is_leader());
    }
}
