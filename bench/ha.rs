//! Failover times, end to end: `cargo bench --bench ha`.
//!
//! A real etcd (Debian's `etcd-server`) on loopback, two agents with a 2 s
//! lease, one private feed on the simulator and a public one on another.
//! Ten times: kill -9 the leader and time until the standby's private feed
//! is live again (the takeover: the lease's expiry, the standby's next
//! campaign, a connection and its first data), then start the killed agent
//! again as the standby. Then three times: stop etcd and time until the
//! leader has fenced itself (its status says standby), start etcd again and
//! wait for one leader. Prints every run, then the median and worst.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::sim::{SimConfig, Simulator};
use common::ha::{Etcd, HaAgent, LEASE, TOKEN, etcd_binary};
use common::*;
use std::time::{Duration, Instant};
use support::{load_average, median, ms, worst};

const TAKEOVERS: usize = 10;
const FENCES: usize = 3;

fn live(a: &HaAgent) -> bool {
    feed_state(a.dir.path(), "sig").as_deref() == Some("live")
}

fn main() {
    let Some(bin) = etcd_binary() else {
        println!("ha: no etcd binary (apt-get install etcd-server): nothing measured");
        return;
    };
    let mut etcd = Etcd::start(&bin);
    let private = Simulator::start(SimConfig {
        tokens: vec![TOKEN.into()],
        data_every: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .unwrap();
    let public = Simulator::start(SimConfig {
        data_every: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .unwrap();
    let mut agents = [
        HaAgent::new("a", &etcd.url(), &private.url(), &public.url()),
        HaAgent::new("b", &etcd.url(), &private.url(), &public.url()),
    ];
    let leader_index = |agents: &[HaAgent; 2]| {
        agents
            .iter()
            .position(|a| a.role().as_deref() == Some("leader") && live(a))
    };
    println!("ha bench: lease {:?}, load {}", LEASE, load_average());
    let mut takeovers = Vec::new();
    for run in 1..=TAKEOVERS {
        assert!(
            wait_for(Duration::from_secs(20), || leader_index(&agents).is_some()
                && agents
                    .iter()
                    .any(|a| a.role().as_deref() == Some("standby"))),
            "no leader with a live private feed and a standby before run {run}"
        );
        let l = leader_index(&agents).unwrap();
        let s = 1 - l;
        let killed = Instant::now();
        agents[l].kill9();
        assert!(
            wait_for(Duration::from_secs(20), || live(&agents[s])),
            "no takeover in run {run}:\n{}",
            agents[s].log()
        );
        let t = killed.elapsed();
        println!(
            "  takeover {run:2}: {:7.1} ms (kill -9 of {} → {}'s private feed live)",
            ms(t),
            agents[l].node,
            agents[s].node
        );
        takeovers.push(ms(t));
        agents[l].start();
    }
    let mut fences = Vec::new();
    for run in 1..=FENCES {
        assert!(wait_for(Duration::from_secs(20), || leader_index(&agents).is_some()));
        let l = leader_index(&agents).unwrap();
        let stopped = Instant::now();
        etcd.stop();
        assert!(
            wait_for(Duration::from_secs(20), || agents[l].role().as_deref()
                != Some("leader")),
            "the leader did not fence itself"
        );
        let t = stopped.elapsed();
        println!(
            "  fence    {run:2}: {:7.1} ms (etcd stopped → {} fenced; half the lease is {:?})",
            ms(t),
            agents[l].node,
            LEASE / 2
        );
        fences.push(ms(t));
        etcd.run();
    }
    println!(
        "takeover after kill -9 (lease {:?}): median {:.0} ms, worst {:.0} ms over {}",
        LEASE,
        median(&takeovers),
        worst(&takeovers),
        takeovers.len()
    );
    println!(
        "fencing after etcd stops: median {:.0} ms, worst {:.0} ms over {}",
        median(&fences),
        worst(&fences),
        fences.len()
    );
}
