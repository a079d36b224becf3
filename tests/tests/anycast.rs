//! Anycast with a real route change (DESIGN principle 1): two sipedge
//! instances, each in a host of its own, both own 10.99.0.1/32; a router
//! between them, the caller and the pool has one route to it, which the
//! test moves. A call set up through instance 1 goes on through instance 2
//! once the route moves — the caller's re-INVITE and BYE, the pool's
//! answers, all carried by an instance that never saw the INVITE — and the
//! same when instance 1 is killed outright and the pool hangs up.
//!
//! Hosts (network namespaces the test makes): caller 10.1.0.2, pool
//! 10.4.0.2, instance 1 10.2.0.2 and instance 2 10.3.0.2 (each with the
//! anycast address on its loopback), the router at .1 of each network.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use e2e::hosts::{self, Host};
use e2e::{require_private_netns, Sipedge, SippUac, SippUas};

const ANYCAST: &str = "10.99.0.1";
const CALLER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const POOL: Ipv4Addr = Ipv4Addr::new(10, 4, 0, 2);
const POOL_PORT: u16 = 5070;
/// How long each call waits, after its set-up, for the test to change the
/// network: the window, not a measure (the test acts as soon as the ACK
/// is seen).
const WINDOW: &str = "3000";
const SEEN: Duration = Duration::from_secs(10);

struct Network {
    router: Host,
    caller: Host,
    pool: Host,
    instances: [Host; 2],
}

impl Network {
    fn new() -> Network {
        let router = Host::new("router");
        let host = |name, net: u8| {
            let h = Host::new(name);
            hosts::link(
                Some(&h),
                &format!("10.{net}.0.2/24"),
                Some(&router),
                &format!("10.{net}.0.1/24"),
            );
            h.run(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("10.{net}.0.1"),
            ]);
            h
        };
        let caller = host("caller", 1);
        let pool = host("pool", 4);
        let instances = [host("instance-1", 2), host("instance-2", 3)];
        for i in &instances {
            i.run(&["ip", "addr", "add", &format!("{ANYCAST}/32"), "dev", "lo"]);
        }
        router.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let net = Network {
            router,
            caller,
            pool,
            instances,
        };
        net.announce(0);
        net
    }

    /// Routes the anycast address to instance `k` (0 or 1).
    fn announce(&self, k: usize) {
        let via = format!("10.{}.0.2", k + 2);
        self.router.run(&[
            "ip",
            "route",
            "replace",
            &format!("{ANYCAST}/32"),
            "via",
            &via,
        ]);
    }

    fn start_instance(&self, k: usize) -> Sipedge {
        let cfg = format!(
            "[node]\nid = \"instance-{}\"\nsecret = \"every instance shares this secret\"\n\
             [[edge]]\nname = \"anycast\"\nlisten = [\"udp:{ANYCAST}:5060\"]\nalgorithm = \"first\"\n\
             [[edge.destination]]\nuri = \"sip:{POOL}:{POOL_PORT}\"\n",
            k + 1
        );
        hosts::within(&self.instances[k], Ipv4Addr::LOCALHOST, || {
            Sipedge::start(&cfg)
        })
    }

    /// UDP datagrams delivered to sockets in instance `k`'s host so far.
    fn datagrams_in(&self, k: usize) -> u64 {
        udp_in_datagrams(self.instances[k].pid())
    }
}

/// `Udp: InDatagrams` of the network namespace of `pid`.
fn udp_in_datagrams(pid: u32) -> u64 {
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).expect("net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (
        udp.next().expect("Udp names"),
        udp.next().expect("Udp values"),
    );
    let at = names
        .split_whitespace()
        .position(|n| n == "InDatagrams")
        .expect("InDatagrams");
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .expect("a count")
}

/// Waits until `uas` has seen `n` ACKs.
fn wait_for_acks(uas: &SippUas, n: usize) {
    let deadline = Instant::now() + SEEN;
    while uas.count_so_far("ACK") < n {
        assert!(Instant::now() < deadline, "the call was not set up");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_call_survives_the_anycast_route_moving_to_another_instance_and_the_first_dying() {
    require_private_netns();
    let net = Network::new();
    let mut first = Some(net.start_instance(0));
    let second = net.start_instance(1);
    let target = format!("{ANYCAST}:5060");

    // The route moves mid-call; both instances stay up.
    let uas = hosts::within(&net.pool, POOL, || {
        SippUas::start("uas-reinvite.xml", POOL_PORT, &[])
    });
    let calls = std::thread::scope(|s| {
        let caller = s.spawn(|| {
            hosts::within(&net.caller, CALLER, || {
                SippUac::run("uac-reinvite.xml", &target, 1, 1, &["-d", WINDOW])
            })
        });
        wait_for_acks(&uas, 1);
        assert_eq!(
            net.datagrams_in(1),
            0,
            "instance 2 saw nothing of the set-up"
        );
        net.announce(1);
        let on_first = net.datagrams_in(0);
        let calls = caller.join().expect("caller thread");
        assert_eq!(
            net.datagrams_in(0),
            on_first,
            "instance 1 saw nothing after"
        );
        calls
    });
    let uas = uas.stop();
    calls.assert_all_successful();
    assert_eq!(
        (uas.count("INVITE"), uas.count("ACK"), uas.count("BYE")),
        (2, 2, 1),
        "the re-INVITE, its ACK and the BYE reached the pool"
    );
    assert!(
        net.datagrams_in(1) >= 5,
        "instance 2 carried the re-INVITE, its 200, the ACK, the BYE and its 200"
    );

    // The route back to instance 1; a call the pool hangs up, set up
    // there, and instance 1 killed outright before the BYE.
    net.announce(0);
    let uas = hosts::within(&net.pool, POOL, || {
        SippUas::start("uas-bye.xml", POOL_PORT, &["-d", WINDOW])
    });
    let calls = std::thread::scope(|s| {
        let caller = s.spawn(|| {
            hosts::within(&net.caller, CALLER, || {
                SippUac::run("uac-hung-up.xml", &target, 1, 1, &[])
            })
        });
        wait_for_acks(&uas, 1);
        drop(first.take());
        net.announce(1);
        caller.join().expect("caller thread")
    });
    let uas = uas.stop();
    calls.assert_all_successful();
    assert_eq!(uas.count("INVITE"), 1);
    drop(second);
}
