//! sipload: a SIP load generator that outruns SIPp.
//!
//! One process, one thread (pin it with `taskset`), playing the caller
//! (UAC) and any number of callees (UAS endpoints) of the same full call
//! flow as SIPp's `uac.xml` / `uas.xml` scenarios:
//!
//! ```text
//! UAC --INVITE--> proxy --> UAS        UAS answers 100, 180, 200 (SDP)
//! UAC <--1xx/200-- proxy <-- UAS
//! UAC --ACK, BYE (Route from Record-Route)--> proxy --> UAS --200--> ...
//! ```
//!
//! Over UDP (the default) or TCP (`--transport tcp`: the UAC on one
//! connection to the proxy, each UAS endpoint listening for the proxy's).
//! Calls start on a fixed schedule (a token bucket at `--rate`), every
//! transaction is retransmitted over UDP (Timer A / E / G) and bounded by
//! `--timeout`, and the whole run is bounded by `--calls` and
//! `--duration-limit`. Datagrams go only to addresses given on the command
//! line (or back to the sender of a request). At the end it prints the
//! figures and one machine-readable `RESULT key=value ...` line; the exit
//! code is 0 when every call succeeded, 1 otherwise, 2 on a usage error.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod hist;
mod msg;
mod tcp;
mod timers;
mod tls;
mod uac;
mod uas;

use clap::{Parser, ValueEnum};
use sip::HeaderIndex;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use sysio::batch::Wait;
use sysio::calls as sys;
use sysio::{RecvBatch, SendBatch};
use timers::{Kind, Timers};
use uac::{Uac, UacConfig};

/// Datagrams per system call, in both directions.
const BATCH: usize = 64;
/// Room per received datagram. Every message of the call flow is well
/// under 2 KB; a larger one is reported as truncated and dropped.
const SLOT: usize = 16 * 1024;
use uas::{Uas, UasConfig};

/// Where the state machines put the datagrams they send.
pub trait Outbox {
    /// Queues one datagram for `to` on socket `sock`, written by `build`.
    fn send(&mut self, sock: usize, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>));
}

/// Which parts run in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Caller only.
    Uac,
    /// Callee endpoints only.
    Uas,
    /// Both, on one thread.
    Both,
}

/// What each "call" of the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flow {
    /// INVITE, 200, ACK, BYE, 200.
    Call,
    /// REGISTER, 200.
    Register,
}

/// The transport the calls use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// Datagrams, batched (recvmmsg/sendmmsg).
    Udp,
    /// One connection from the UAC to the proxy; each UAS endpoint accepts
    /// the proxy's.
    Tcp,
    /// As TCP, with TLS on each connection (`--tls-cert`, `--tls-key` for
    /// the UAS endpoints).
    Tls,
}

impl Transport {
    fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// Socket receive and send buffer asked for.
const SOCKET_BUFFER: usize = 4 << 20;
/// Receive batches taken from one socket before looking at the clock again.
const ROUNDS: usize = 4;

#[derive(Parser, Debug)]
#[command(
    name = "sipload",
    version,
    about = "SIP load generator: UAC and UAS endpoints on one thread, full call flow \
             (INVITE/100/180/200/ACK/BYE/200), rate control, retransmissions, timeouts.",
    after_help = "Example (through a proxy on :5060, pinned to CPU 1):\n  \
        taskset -c 1 sipload --proxy 127.0.0.1:5060 --uas 127.0.0.1:5070 \
        --uas 127.0.0.1:5071 --uac 127.0.0.1:5062 --rate 5000 --calls 100000\n\n\
        Exit status: 0 every call succeeded, 1 some did not, 2 usage error."
)]
struct Args {
    /// Which side(s) to play.
    #[arg(long, value_enum, default_value = "both")]
    role: Role,
    /// Where INVITEs are sent (the proxy; or a UAS address to call it directly).
    #[arg(long, value_name = "IP:PORT")]
    proxy: Option<SocketAddr>,
    /// A UAS endpoint to listen on; repeat for more [default: 127.0.0.1:5070
    /// and 127.0.0.1:5071]. With --role uac: an address besides --proxy
    /// that ACK and BYE may be sent to (nothing else is ever contacted).
    #[arg(long = "uas", value_name = "IP:PORT")]
    uas: Vec<SocketAddr>,
    /// The UAC's own address (port 0: any free port).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    uac: SocketAddr,
    /// Calls started per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Calls to make (UAC), or dialogs to expect (UAS only).
    #[arg(long, default_value_t = 10_000)]
    calls: u64,
    /// Seconds after which the run stops, finished or not [default: calls /
    /// rate + 2 x timeout + hold + 10].
    #[arg(long, value_name = "SECONDS")]
    duration_limit: Option<f64>,
    /// Seconds a transaction waits for its final response (UAC), or a 200
    /// for its ACK and an ACK for its BYE (UAS).
    #[arg(long, value_name = "SECONDS", default_value_t = 8.0)]
    timeout: f64,
    /// Milliseconds between ACK and BYE (SIPp's -d).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    hold: u64,
    /// Most calls in progress at once; a call due beyond it is not started
    /// then (it shows as a lower achieved rate).
    #[arg(long, default_value_t = 100_000)]
    limit: usize,
    /// User part of the INVITE's Request-URI.
    #[arg(long, default_value = "service")]
    service: String,
    /// Print a line of counters to stderr every second.
    #[arg(long)]
    progress: bool,
    /// UDP, TCP or TLS.
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// What a call is: the full INVITE flow, or one REGISTER answered 2xx
    /// (each from an address of record of its own; `--role uac`, toward
    /// a registrar or a registration proxy).
    #[arg(long, value_enum, default_value = "call")]
    flow: Flow,
    /// The UAS endpoints' certificate chain, PEM (--transport tls).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key, PEM.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
}

/// The checked settings of a run.
#[derive(Debug)]
struct Plan {
    role: Role,
    proxy: Option<SocketAddr>,
    uas: Vec<SocketAddr>,
    uac: SocketAddr,
    rate: f64,
    calls: u64,
    duration: Duration,
    timeout: Duration,
    hold: Duration,
    limit: usize,
    service: String,
    progress: bool,
    transport: Transport,
    flow: Flow,
    /// Over TLS: the client and server configs.
    tls: Option<tls::Tls>,
}

fn secs(name: &str, v: f64, max: f64) -> Result<Duration, String> {
    if !(v.is_finite() && v > 0.0 && v <= max) {
        return Err(format!(
            "--{name} must be above 0 and at most {max} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn plan(a: Args) -> Result<Plan, String> {
    let has_uac = a.role != Role::Uas;
    let has_uas = a.role != Role::Uac;
    if !(a.rate.is_finite() && a.rate > 0.0 && a.rate <= 10_000_000.0) {
        return Err("--rate must be above 0 and at most 10000000".into());
    }
    if a.calls == 0 {
        return Err("--calls must be at least 1".into());
    }
    if a.limit == 0 {
        return Err("--limit must be at least 1".into());
    }
    let timeout = secs("timeout", a.timeout, 3600.0)?;
    if a.hold > 3_600_000 {
        return Err("--hold must be at most 3600000 ms".into());
    }
    let hold = Duration::from_millis(a.hold);
    let proxy = match (has_uac, a.proxy) {
        (true, None) => return Err("--proxy is required with --role uac or both".into()),
        (_, p) => p,
    };
    if a.service.is_empty()
        || !a
            .service
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c))
    {
        return Err("--service must be a non-empty SIP user part".into());
    }
    let mut uas = a.uas;
    if has_uas && uas.is_empty() {
        uas = vec![
            "127.0.0.1:5070".parse().unwrap(),
            "127.0.0.1:5071".parse().unwrap(),
        ];
    }
    for (i, x) in uas.iter().enumerate() {
        if uas[..i].contains(x) {
            return Err(format!("--uas {x} given twice"));
        }
        if x.port() == 0 {
            return Err(format!("--uas {x}: a UAS needs a fixed port"));
        }
        if has_uac && *x == a.uac {
            return Err(format!("--uac and --uas are both {x}"));
        }
    }
    if uas.len() > 15 {
        return Err("at most 15 --uas endpoints".into());
    }
    if a.flow == Flow::Register && a.role != Role::Uac {
        return Err("--flow register goes with --role uac: a registrar answers".into());
    }
    let tls = match (a.transport, &a.tls_cert, &a.tls_key) {
        (Transport::Tls, Some(c), Some(k)) => Some(tls::Tls::new(Some((c, k)))?),
        (Transport::Tls, None, None) if !has_uas => Some(tls::Tls::new(None)?),
        (Transport::Tls, _, _) => {
            return Err("--transport tls: the UAS endpoints need --tls-cert and --tls-key".into())
        }
        (_, None, None) => None,
        _ => return Err("--tls-cert and --tls-key go with --transport tls".into()),
    };
    let default_duration =
        a.calls as f64 / a.rate + 2.0 * timeout.as_secs_f64() + hold.as_secs_f64() + 10.0;
    let duration = secs(
        "duration-limit",
        a.duration_limit.unwrap_or(default_duration),
        7.0 * 86_400.0,
    )?;
    Ok(Plan {
        role: a.role,
        proxy,
        uas,
        uac: a.uac,
        rate: a.rate,
        calls: a.calls,
        duration,
        timeout,
        hold,
        limit: a.limit,
        service: a.service,
        progress: a.progress,
        transport: a.transport,
        flow: a.flow,
        tls,
    })
}

/// The sockets and their send batches.
struct Net {
    socks: Vec<UdpSocket>,
    fds: Vec<RawFd>,
    batches: Vec<SendBatch>,
    /// Datagrams the kernel refused to send.
    refused: u64,
}

impl Outbox for Net {
    fn send(&mut self, sock: usize, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        let b = &mut self.batches[sock];
        b.push_with(to, build);
        if b.len() >= BATCH {
            self.refused += b.send(self.fds[sock], |_, _| {}).map_or(0, |r| r.1) as u64;
        }
    }
}

/// UDP sockets or TCP connections, as the state machines send on them.
enum AnyNet {
    Udp(Net),
    Tcp(tcp::TcpNet),
}

impl Outbox for AnyNet {
    fn send(&mut self, sock: usize, to: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        match self {
            AnyNet::Udp(n) => n.send(sock, to, build),
            AnyNet::Tcp(n) => n.send(sock, to, build),
        }
    }
}

impl AnyNet {
    fn flush(&mut self) {
        match self {
            AnyNet::Udp(n) => n.flush(),
            AnyNet::Tcp(n) => n.flush(),
        }
    }

    fn refused(&self) -> u64 {
        match self {
            AnyNet::Udp(n) => n.refused,
            AnyNet::Tcp(n) => n.refused,
        }
    }
}

impl Net {
    fn bind(addrs: &[SocketAddr]) -> Result<Net, String> {
        let mut socks = Vec::new();
        for a in addrs {
            let s = UdpSocket::bind(a).map_err(|e| format!("cannot bind {a}: {e}"))?;
            sys::set_buffers(s.as_raw_fd(), SOCKET_BUFFER);
            socks.push(s);
        }
        Ok(Net {
            fds: socks.iter().map(|s| s.as_raw_fd()).collect(),
            batches: socks.iter().map(|_| SendBatch::new(BATCH)).collect(),
            socks,
            refused: 0,
        })
    }

    fn flush(&mut self) {
        for (b, &fd) in self.batches.iter_mut().zip(&self.fds) {
            self.refused += b.send(fd, |_, _| {}).map_or(0, |r| r.1) as u64;
        }
    }
}

/// The two sides, as a received message reaches them.
struct Ends<'a> {
    uac: &'a mut Option<Uac>,
    uas: &'a mut Option<Uas>,
    index: &'a mut HeaderIndex,
    /// The first UAS socket index (1 when a UAC runs, else 0).
    uas_base: usize,
}

impl Ends<'_> {
    /// Hands the message received on socket `sock` (`None`: truncated or
    /// unreadable) to the UAC (socket 0, when it runs) or the UAS.
    fn deliver(
        &mut self,
        now: u64,
        sock: usize,
        got: Option<(&[u8], SocketAddr)>,
        timers: &mut Timers,
        net: &mut AnyNet,
    ) {
        let to_uac = self.uas_base == 1 && sock == 0;
        let parsed =
            got.and_then(|(bytes, from)| Some((sip::parse(bytes, self.index).ok()?, from)));
        if to_uac {
            let u = self.uac.as_mut().expect("uac");
            match parsed {
                Some((m, _)) => u.on_message(now, &m, timers, net),
                None => u.stats.junk += 1,
            }
        } else if let Some(u) = self.uas.as_mut() {
            match parsed {
                Some((m, from)) => u.on_message(now, sock - self.uas_base, &m, from, timers, net),
                None => u.stats.junk += 1,
            }
        }
    }
}

/// A per-run tag, so that stale messages of an earlier run are told apart.
fn run_tag() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let h = msg::hash(&(t ^ u64::from(std::process::id()) << 32).to_le_bytes());
    (h ^ h >> 32) as u32
}

/// Everything measured.
struct Outcome {
    elapsed: Duration,
    cpu: (Duration, Duration),
    uac: Option<Uac>,
    uas: Option<Uas>,
    refused: u64,
    not_started: u64,
    limited: u64,
    local_uac: Option<SocketAddr>,
}

fn run(p: &Plan) -> Result<Outcome, String> {
    let has_uac = p.role != Role::Uas;
    let has_uas = p.role != Role::Uac;
    let mut addrs = Vec::new();
    if has_uac {
        addrs.push(p.uac);
    }
    if has_uas {
        addrs.extend(&p.uas);
    }
    let mut net = match p.transport {
        Transport::Udp => AnyNet::Udp(Net::bind(&addrs)?),
        Transport::Tcp | Transport::Tls => AnyNet::Tcp(tcp::TcpNet::new(
            if has_uac { p.proxy } else { None },
            if has_uas { &p.uas } else { &[] },
            p.tls.clone(),
        )?),
    };
    // The UDP sockets' descriptors (none over TCP, whose connections come
    // and go).
    let udp_fds: Vec<RawFd> = match &net {
        AnyNet::Udp(n) => n.fds.clone(),
        AnyNet::Tcp(_) => Vec::new(),
    };
    let local_uac = match &net {
        AnyNet::Udp(n) if has_uac => n.socks[0].local_addr().ok(),
        AnyNet::Tcp(n) => n.uac_local(),
        AnyNet::Udp(_) => None,
    };
    let mut inbox = tcp::Inbox::default();
    let run = run_tag();
    let mut timers = Timers::new();
    let uas_base = usize::from(has_uac);
    let mut uac = if has_uac {
        let local = local_uac.ok_or("the UAC has no local address")?;
        let proxy = p.proxy.expect("checked in plan");
        let mut allowed = vec![proxy];
        allowed.extend(&p.uas);
        Some(Uac::new(
            UacConfig {
                sock: 0,
                local,
                proxy,
                allowed,
                service: p.service.clone(),
                timeout: p.timeout,
                hold: p.hold,
                run,
                transport: p.transport.via_name(),
                register: p.flow == Flow::Register,
            },
            &mut timers,
        ))
    } else {
        None
    };
    let mut uas = if has_uas {
        Some(Uas::new(
            UasConfig {
                socks: p
                    .uas
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (uas_base + i, *a))
                    .collect(),
                ack_timeout: p.timeout,
                bye_timeout: p.timeout + p.hold,
                run,
                transport: p.transport.via_name(),
            },
            &mut timers,
        ))
    } else {
        None
    };

    let mut recv = RecvBatch::new(BATCH, SLOT);
    let mut index = HeaderIndex::new();
    let t0 = Instant::now();
    let clock = || t0.elapsed().as_nanos() as u64;
    let cpu0 = sys::cpu_time();
    let deadline = p.duration.as_nanos() as u64;
    let interval = 1e9 / p.rate;
    // Token bucket: at most 10 ms worth of calls may be started late in a
    // burst; beyond that, missed starts are lost (a lower achieved rate).
    let depth = (p.rate / 100.0).max(1.0);
    let mut tokens = 1.0f64;
    let mut refilled = 0u64;
    let mut limited = 0u64;
    let mut last_traffic = 0u64;
    let mut seen_traffic = false;
    let idle_exit = (p.timeout + p.hold).as_nanos() as u64 + 2_000_000_000;
    let mut next_progress = 1_000_000_000u64;
    let mut last_progress_ok = 0u64;

    loop {
        let now = clock();
        if now >= deadline {
            break;
        }
        // Start the calls that are due.
        let mut next_start = u64::MAX;
        if let Some(uac) = uac.as_mut() {
            if uac.stats.started < p.calls {
                tokens = (tokens + (now - refilled) as f64 / interval).min(depth);
                refilled = now;
                while tokens >= 1.0 && uac.stats.started < p.calls {
                    if uac.active() >= p.limit {
                        limited += tokens.floor() as u64;
                        tokens -= tokens.floor();
                        break;
                    }
                    uac.start_call(now, &mut timers, &mut net);
                    tokens -= 1.0;
                }
                if uac.stats.started < p.calls {
                    next_start = now + ((1.0 - tokens).max(0.0) * interval) as u64;
                }
            }
        }
        // Fire the timers that are due.
        while let Some(t) = timers.pop_due(now) {
            match t.kind {
                Kind::UacRetransmit
                | Kind::UacInviteTimeout
                | Kind::UacByeTimeout
                | Kind::UacHangUp => {
                    if let Some(uac) = uac.as_mut() {
                        uac.on_timer(now, t, &mut timers, &mut net);
                    }
                }
                _ => {
                    if let Some(uas) = uas.as_mut() {
                        uas.on_timer(now, t, &mut timers, &mut net);
                    }
                }
            }
        }
        net.flush();

        // Done?
        let uac_done = uac
            .as_ref()
            .is_none_or(|u| u.stats.started >= p.calls && u.active() == 0);
        let uas_idle = uas.as_ref().is_none_or(|u| u.active() == 0);
        let finished = match p.role {
            Role::Uac | Role::Both => uac_done && uas_idle,
            Role::Uas => {
                let u = uas.as_ref().expect("uas role");
                uas_idle
                    && (u.stats.completed + u.stats.failed() >= p.calls
                        || (seen_traffic && now.saturating_sub(last_traffic) >= idle_exit))
            }
        };
        if finished {
            break;
        }

        if p.progress && now >= next_progress {
            next_progress += 1_000_000_000;
            let mut line = format!(
                "sipload: t={:.0}s timers={}",
                now as f64 / 1e9,
                timers.len()
            );
            if let Some(u) = uac.as_ref() {
                let _ = write!(
                    line,
                    " started={} active={} ok={} (+{}/s) failed={} retrans={}",
                    u.stats.started,
                    u.active(),
                    u.stats.ok,
                    u.stats.ok - last_progress_ok,
                    u.stats.failed(),
                    u.stats.retrans_invite + u.stats.retrans_bye
                );
                last_progress_ok = u.stats.ok;
            }
            if let Some(u) = uas.as_ref() {
                let _ = write!(
                    line,
                    " uas: dialogs={} active={} failed={} retrans200={}",
                    u.stats.invites,
                    u.active(),
                    u.stats.failed(),
                    u.stats.retrans_200
                );
            }
            eprintln!("{line}");
        }

        // Take what has arrived.
        let mut got = 0;
        if let AnyNet::Tcp(t) = &mut net {
            got += t.recv(&mut inbox);
            let now = clock();
            let mut ends = Ends {
                uac: &mut uac,
                uas: &mut uas,
                index: &mut index,
                uas_base,
            };
            for (sock, from, bytes) in inbox.iter() {
                ends.deliver(now, sock, Some((bytes, from)), &mut timers, &mut net);
            }
        }
        for (sock, &fd) in udp_fds.iter().enumerate() {
            for _ in 0..ROUNDS {
                let n = recv
                    .recv(fd, Wait::No)
                    .map_err(|e| format!("receive: {e}"))?;
                if n == 0 {
                    break;
                }
                got += n;
                let now = clock();
                let mut ends = Ends {
                    uac: &mut uac,
                    uas: &mut uas,
                    index: &mut index,
                    uas_base,
                };
                for i in 0..n {
                    ends.deliver(now, sock, recv.get(i), &mut timers, &mut net);
                }
                if n < BATCH {
                    break;
                }
            }
        }
        net.flush();
        if got > 0 {
            seen_traffic = true;
            last_traffic = clock();
            continue;
        }
        // Nothing arrived: sleep until something does, a call is due, a
        // timer expires or the run's time is up.
        let wake = next_start
            .min(timers.next_deadline().unwrap_or(u64::MAX))
            .min(deadline)
            .min(if p.progress { next_progress } else { u64::MAX });
        let now = clock();
        if wake > now {
            let waited = match &net {
                AnyNet::Udp(_) => sys::wait_readable(&udp_fds, Duration::from_nanos(wake - now)),
                AnyNet::Tcp(t) => {
                    // A write waiting for room is tried again within 1 ms.
                    let wait = if t.pending() {
                        (wake - now).min(1_000_000)
                    } else {
                        wake - now
                    };
                    sys::wait_readable(&t.fds(), Duration::from_nanos(wait))
                }
            };
            waited.map_err(|e| format!("poll: {e}"))?;
        }
    }

    let elapsed = t0.elapsed();
    let cpu1 = sys::cpu_time();
    let mut not_started = 0;
    if let Some(u) = uac.as_mut() {
        not_started = p.calls - u.stats.started;
        u.finish();
    }
    if let Some(u) = uas.as_mut() {
        u.finish();
    }
    Ok(Outcome {
        elapsed,
        cpu: (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
        uac,
        uas,
        refused: net.refused(),
        not_started,
        limited,
        local_uac,
    })
}

fn report(p: &Plan, o: &Outcome) -> bool {
    let el = o.elapsed.as_secs_f64();
    let (cu, cs) = (o.cpu.0.as_secs_f64(), o.cpu.1.as_secs_f64());
    let mut ok = true;
    let role = format!("{:?}", p.role).to_lowercase();
    let mut kv = format!("RESULT role={role}");
    println!(
        "sipload: role {role}{}{}",
        o.local_uac
            .map(|a| format!(", uac {a} -> {}", p.proxy.expect("proxy")))
            .unwrap_or_default(),
        if p.role == Role::Uac {
            String::new()
        } else {
            format!(
                ", uas {}",
                p.uas
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    let mut calls_done = 0;
    if let Some(u) = o.uac.as_ref() {
        let s = &u.stats;
        // The schedule starts at 0 on the run's clock: call k is due at
        // k / rate, so on schedule the last of n calls starts at (n-1) / rate.
        // (Measured from the first start instead, a late first call followed
        // by a catch-up burst would look faster than the offered rate.)
        let span = s.last_start as f64 / 1e9;
        let achieved = if span > 0.0 {
            s.started.saturating_sub(1) as f64 / span
        } else {
            0.0
        };
        calls_done = s.ok;
        println!(
            "rate      offered {:.1}/s  achieved {:.1}/s  (started {} of {} calls over {:.3} s{})",
            p.rate,
            achieved,
            s.started,
            p.calls,
            span,
            if o.limited > 0 {
                format!("; {} starts skipped at --limit {}", o.limited, p.limit)
            } else {
                String::new()
            }
        );
        if s.started > 1 && achieved < 0.99 * p.rate {
            println!(
                "WARNING   the generator did not keep up with the offered rate \
                 ({:.1}% of it)",
                100.0 * achieved / p.rate
            );
        }
        println!(
            "calls     ok {}  failed {}  (timeout: INVITE {} BYE {}; non-2xx {}{}; unexpected {}; unfinished {}; not started {})",
            s.ok,
            s.failed(),
            s.timeout_invite,
            s.timeout_bye,
            s.non2xx,
            if s.codes.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}]",
                    s.codes
                        .iter()
                        .map(|(c, n)| format!("{c}x{n}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            },
            s.unexpected,
            s.unfinished,
            o.not_started
        );
        println!(
            "uac       retransmitted INVITE {}  BYE {}; ACK re-sent {}; provisional {}; stray {}; junk {}",
            s.retrans_invite, s.retrans_bye, s.acks_resent, s.provisional, s.stray, s.junk
        );
        let h = &u.rtd;
        println!(
            "INVITE->200 us  min {}  median {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}  (n {})",
            h.min(),
            h.quantile(0.5),
            h.quantile(0.9),
            h.quantile(0.99),
            h.quantile(0.999),
            h.max(),
            h.mean(),
            h.count()
        );
        ok &= s.failed() == 0 && o.not_started == 0;
        let _ = write!(
            kv,
            " offered_cps={:.1} achieved_cps={:.1} calls={} started={} ok={} failed={} \
             failed_timeout={} failed_non2xx={} failed_unexpected={} failed_unfinished={} \
             not_started={} limited={} retrans_invite={} retrans_bye={} stray={} junk={} \
             rtd_min_us={} rtd_p50_us={} rtd_p90_us={} rtd_p99_us={} rtd_p999_us={} rtd_max_us={}",
            p.rate,
            achieved,
            p.calls,
            s.started,
            s.ok,
            s.failed() + o.not_started,
            s.timeout_invite + s.timeout_bye,
            s.non2xx,
            s.unexpected,
            s.unfinished,
            o.not_started,
            o.limited,
            s.retrans_invite,
            s.retrans_bye,
            s.stray,
            s.junk,
            h.min(),
            h.quantile(0.5),
            h.quantile(0.9),
            h.quantile(0.99),
            h.quantile(0.999),
            h.max()
        );
    }
    if let Some(u) = o.uas.as_ref() {
        let s = &u.stats;
        println!(
            "uas       dialogs {} (per endpoint {})  completed {}  failed {} (no ACK {}, no BYE {}, unfinished {})",
            s.invites,
            s.per_endpoint
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            s.completed,
            s.failed(),
            s.no_ack,
            s.no_bye,
            s.unfinished
        );
        println!(
            "uas       retransmitted 200 {}; INVITE retransmissions absorbed {}; BYE retransmissions {}; stray {}; OPTIONS {}; junk {}",
            s.retrans_200, s.invite_retrans, s.bye_retrans, s.stray, s.options, s.junk
        );
        ok &= s.failed() == 0;
        if p.role == Role::Uas {
            calls_done = s.completed;
            ok &= s.completed >= p.calls;
        }
        let _ = write!(
            kv,
            " uas_dialogs={} uas_completed={} uas_failed={} uas_no_ack={} uas_no_bye={} \
             uas_retrans_200={} uas_stray={} uas_junk={}",
            s.invites,
            s.completed,
            s.failed(),
            s.no_ack,
            s.no_bye,
            s.retrans_200,
            s.stray,
            s.junk
        );
    }
    let per_call = if calls_done > 0 {
        (cu + cs) * 1e6 / calls_done as f64
    } else {
        0.0
    };
    println!(
        "cpu       user {cu:.3} s  sys {cs:.3} s  = {:.1}% of one core over {el:.3} s; {per_call:.1} us per completed call",
        if el > 0.0 { 100.0 * (cu + cs) / el } else { 0.0 }
    );
    if o.refused > 0 {
        println!("send      {} datagrams refused by the kernel", o.refused);
    }
    let _ = write!(
        kv,
        " send_refused={} cpu_user_s={cu:.3} cpu_sys_s={cs:.3} cpu_pct={:.1} cpu_us_per_call={per_call:.1} elapsed_s={el:.3} pass={}",
        o.refused,
        if el > 0.0 { 100.0 * (cu + cs) / el } else { 0.0 },
        u8::from(ok)
    );
    println!("{kv}");
    ok
}

fn main() -> ExitCode {
    let p = match plan(Args::parse()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sipload: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&p) {
        Ok(o) => {
            if report(&p, &o) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sipload: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests;
