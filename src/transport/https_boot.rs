//! The addresses of DoH servers given by host name (full build only), found through the
//! plain `bootstrap` servers on the event loop, never by a blocking lookup.
//!
//! Each lookup goes out on a fresh UDP socket on a random port with a random ID, as an
//! upstream attempt does, and only a reply with that ID and question counts. A first,
//! then AAAA, each server in turn, one second each, the whole round twice. The address
//! is kept for the TTL of its record (within [`MIN_TTL`] .. [`MAX_TTL`]) and looked up
//! again when that runs out, at link up, and after repeated failed connections to it;
//! while a new lookup runs, or when it fails, the old address stays in use. Only these
//! host names are ever sent to a bootstrap server.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::https::Target;
use super::Owner;
use crate::tls::Pin;
use crate::wire::message::{read_question, read_record, Section};
use crate::wire::{build, rtype, NameBuf};

/// `Owner::pending` of a bootstrap query: no question in flight has this slot.
pub const OWNER: usize = usize::MAX;
/// How long one bootstrap server gets to answer one query.
const TRY_TIMEOUT: Duration = Duration::from_secs(1);
/// Each sequence of (type, server) is tried this many times.
const ROUNDS: usize = 2;
/// An address is kept at least this long, whatever its TTL says (no query storm on TTL 0)
/// and at most this long (a server that moved is found within a day).
pub const MIN_TTL: u32 = 10;
pub const MAX_TTL: u32 = 86_400;
/// After a lookup that found nothing, the next one waits this long, doubling to the max.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Connections to a known address that failed in a row before it is looked up again.
const CONNECT_FAILS_TO_RELOOK: u32 = 3;

/// A DoH server given by host name.
#[derive(Clone, PartialEq, Eq)]
pub struct Named {
    pub port: u16,
    pub target: Target,
    pub pins: Vec<Pin>,
}

/// A query to a bootstrap server, waiting for its reply.
struct Ask {
    slot: usize,
    id: u16,
    qtype: u16,
    deadline: Instant,
}

struct Job {
    named: Named,
    name: Option<NameBuf>,
    addr: Option<SocketAddr>,
    /// When to look the name up (again); None while a lookup runs or none is needed.
    due: Option<Instant>,
    ask: Option<Ask>,
    /// Position in the (type, server) sequence of the lookup running.
    step: usize,
    retry: Duration,
    connect_fails: u32,
    /// The first lookup ended (found or not): queries no longer wait for it.
    settled: bool,
    /// Why the last lookup found nothing, as logged (logged once per change).
    status: String,
}

/// What the transport has to do after a lookup.
pub enum Change {
    /// The server at `old` (if it had one) is now at `new`.
    Moved {
        old: Option<SocketAddr>,
        new: SocketAddr,
        named: Named,
    },
}

#[derive(Default)]
pub struct Boot {
    servers: Vec<SocketAddr>,
    jobs: Vec<Job>,
    rng: Option<crate::rand::Rng>,
    /// Addresses changed, or a first lookup ended, since the daemon last looked.
    pub settled_news: bool,
    pub changes: Vec<Change>,
}

/// A query to send: (job, bootstrap server, message).
pub struct Send {
    pub job: usize,
    pub server: SocketAddr,
    pub owner: Owner,
    pub msg: Vec<u8>,
}

impl Boot {
    /// New configuration: the named DoH servers and the bootstrap servers. A server
    /// configured as before keeps its address (returned, to be used at once) and is
    /// looked up again now; the others are looked up now.
    pub fn configure(
        &mut self,
        named: Vec<Named>,
        servers: Vec<SocketAddr>,
        now: Instant,
    ) -> Vec<(SocketAddr, Named)> {
        if self.rng.is_none() {
            self.rng = crate::rand::Rng::new().ok();
        }
        let old = std::mem::take(&mut self.jobs);
        let mut kept = Vec::new();
        for n in named {
            let addr = if servers == self.servers {
                old.iter().find(|j| j.named == n).and_then(|j| j.addr)
            } else {
                None
            };
            if let Some(a) = addr {
                kept.push((a, n.clone()));
            }
            let name = NameBuf::from_dotted(&n.target.host).ok();
            self.jobs.push(Job {
                named: n,
                name,
                addr,
                due: Some(now),
                ask: None,
                step: 0,
                retry: RETRY_FIRST,
                connect_fails: 0,
                settled: addr.is_some(),
                status: String::new(),
            });
        }
        self.servers = servers;
        // Sockets of the old lookups are closed by the caller (see `asking`).
        self.changes.clear();
        kept
    }

    /// Slots of the bootstrap queries in flight.
    pub fn asking(&self) -> Vec<usize> {
        self.jobs
            .iter()
            .filter_map(|j| j.ask.as_ref().map(|a| a.slot))
            .collect()
    }

    /// Link up: every name is looked up again now (the old address stays meanwhile).
    pub fn relook_all(&mut self, now: Instant) {
        for j in &mut self.jobs {
            if j.ask.is_none() {
                j.due = Some(now);
                j.step = 0;
            }
            j.retry = RETRY_FIRST;
        }
    }

    /// Some named server's first lookup is still running, or its end is not yet in the
    /// daemon's upstream list: its queries may wait for it. The reply that ends a lookup
    /// is read in the same turn of the loop as client queries, before the daemon takes
    /// the news (see `settled_news`): a query read in between must wait for that too,
    /// not find the list empty and fail.
    pub fn resolving(&self) -> bool {
        self.settled_news || self.jobs.iter().any(|j| !j.settled)
    }

    /// The earliest moment something is due: a lookup to start or a reply's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs
            .iter()
            .filter_map(|j| j.ask.as_ref().map(|a| a.deadline).or(j.due))
            .min()
    }

    /// Per named server without an address: URL and why.
    pub fn unresolved(&self) -> Vec<(String, String)> {
        self.jobs
            .iter()
            .filter(|j| j.addr.is_none())
            .map(|j| {
                let t = &j.named.target;
                let why = if j.status.is_empty() {
                    "looking up its address".to_string()
                } else {
                    j.status.clone()
                };
                (format!("https://{}{}", t.authority, t.path), why)
            })
            .collect()
    }

    /// A connection to `addr` failed; after a few in a row its name is looked up again.
    pub fn connect_failed(&mut self, addr: SocketAddr, now: Instant) {
        for j in &mut self.jobs {
            if j.addr == Some(addr) {
                j.connect_fails += 1;
                if j.connect_fails >= CONNECT_FAILS_TO_RELOOK && j.ask.is_none() {
                    log::info!(
                        "DoH server {}: {} failed connections to {addr}; looking up its address again",
                        j.named.target.host,
                        j.connect_fails
                    );
                    j.connect_fails = 0;
                    j.due = Some(now);
                    j.step = 0;
                }
            }
        }
    }

    /// An answer came from `addr`: the address works.
    pub fn connect_ok(&mut self, addr: SocketAddr) {
        for j in &mut self.jobs {
            if j.addr == Some(addr) {
                j.connect_fails = 0;
            }
        }
    }

    /// Deadlines at `now`: slots of queries that timed out (to close), and the queries
    /// to send (lookups due, next steps). `link_down`: nothing new is sent.
    pub fn tick(&mut self, now: Instant, link_down: bool) -> (Vec<usize>, Vec<Send>) {
        let mut close = Vec::new();
        let mut send = Vec::new();
        for ji in 0..self.jobs.len() {
            let timed_out = self.jobs[ji]
                .ask
                .as_ref()
                .is_some_and(|a| a.deadline <= now);
            if timed_out {
                if let Some(a) = self.jobs[ji].ask.take() {
                    close.push(a.slot);
                }
                self.jobs[ji].status = "no bootstrap server answered".into();
                self.next_step(ji, now, &mut send);
            } else if self.jobs[ji].ask.is_none()
                && self.jobs[ji].due.is_some_and(|d| d <= now)
                && !link_down
            {
                self.jobs[ji].due = None;
                self.jobs[ji].step = 0;
                self.start_step(ji, now, &mut send);
            }
        }
        (close, send)
    }

    /// The query of job `ji` went out on `slot`, or could not (then the next step).
    pub fn sent(&mut self, s: &Send, slot: Option<usize>, now: Instant, more: &mut Vec<Send>) {
        let Some(j) = self.jobs.get_mut(s.job) else {
            return;
        };
        match slot {
            Some(slot) => {
                j.ask = Some(Ask {
                    slot,
                    id: u16::from_be_bytes([s.msg[0], s.msg[1]]),
                    qtype: u16::from_be_bytes([s.msg[s.msg.len() - 4], s.msg[s.msg.len() - 3]]),
                    deadline: now + TRY_TIMEOUT,
                })
            }
            None => {
                j.status = format!("cannot send to bootstrap server {}", s.server);
                self.next_step(s.job, now, more);
            }
        }
    }

    /// The query on `slot` for `owner` failed (ICMP unreachable): the next step.
    pub fn failed(&mut self, owner: Owner, now: Instant, send: &mut Vec<Send>) {
        let ji = owner.gen as usize;
        if self.jobs.get(ji).and_then(|j| j.ask.as_ref()).is_none() {
            return;
        }
        if let Some(j) = self.jobs.get_mut(ji) {
            j.ask = None;
            j.status = "bootstrap server unreachable".into();
        }
        self.next_step(ji, now, send);
    }

    /// A datagram for `owner`: None if it is not the reply to its query (read past),
    /// else the lookup moves on (the socket is done with).
    pub fn answer(
        &mut self,
        owner: Owner,
        msg: &[u8],
        now: Instant,
        send: &mut Vec<Send>,
    ) -> Option<()> {
        let ji = owner.gen as usize;
        let j = self.jobs.get_mut(ji)?;
        let ask = j.ask.as_ref()?;
        let name = j.name.as_ref()?;
        let found = answer_address(msg, ask.id, name, ask.qtype)?;
        j.ask = None;
        match found {
            Ok(Some((ip, ttl))) => {
                let new = SocketAddr::new(ip, j.named.port);
                let ttl = ttl.clamp(MIN_TTL, MAX_TTL);
                j.due = Some(now + Duration::from_secs(ttl as u64));
                j.retry = RETRY_FIRST;
                j.status.clear();
                j.settled = true;
                self.settled_news = true;
                if j.addr != Some(new) {
                    log::info!(
                        "DoH server {} is at {ip} (bootstrap, for {ttl} s)",
                        j.named.target.host
                    );
                    self.changes.push(Change::Moved {
                        old: j.addr,
                        new,
                        named: j.named.clone(),
                    });
                    j.addr = Some(new);
                    j.connect_fails = 0;
                }
            }
            Ok(None) => {
                j.status = "the bootstrap servers know no address for it".into();
                self.next_step(ji, now, send);
            }
            Err(e) => {
                j.status = format!("bootstrap server: {e}");
                self.next_step(ji, now, send);
            }
        }
        Some(())
    }

    fn start_step(&mut self, ji: usize, now: Instant, send: &mut Vec<Send>) {
        let n = self.servers.len();
        let Some(j) = self.jobs.get_mut(ji) else {
            return;
        };
        let Some(name) = j.name.as_ref() else {
            j.status = format!("'{}' is not a DNS name", j.named.target.host);
            return self.lookup_failed(ji, now);
        };
        if n == 0 || j.step >= 2 * n * ROUNDS {
            if n == 0 {
                j.status = "no bootstrap server configured".into();
            }
            return self.lookup_failed(ji, now);
        }
        let within = j.step % (2 * n);
        let qtype = if within < n { rtype::A } else { rtype::AAAA };
        let server = self.servers[within % n];
        let id = self.rng.as_mut().map_or(0, |r| r.u16());
        let mut msg = Vec::new();
        build::query(&mut msg, id, name, qtype, 1, true, false);
        let owner = Owner {
            pending: OWNER,
            gen: ji as u32,
            attempt: j.step,
        };
        send.push(Send {
            job: ji,
            server,
            owner,
            msg,
        });
    }

    fn next_step(&mut self, ji: usize, now: Instant, send: &mut Vec<Send>) {
        if let Some(j) = self.jobs.get_mut(ji) {
            j.step += 1;
        }
        self.start_step(ji, now, send);
    }

    /// Every step done without an address: the old one (if any) stays, and the lookup
    /// is tried again later.
    fn lookup_failed(&mut self, ji: usize, now: Instant) {
        let Some(j) = self.jobs.get_mut(ji) else {
            return;
        };
        j.due = Some(now + j.retry);
        j.retry = (j.retry * 2).min(RETRY_MAX);
        if !j.settled {
            j.settled = true;
            self.settled_news = true;
        }
        let host = &j.named.target.host;
        match j.addr {
            Some(a) => log::warn!(
                "DoH server {host}: address lookup failed ({}); still using {}",
                j.status,
                a.ip()
            ),
            None => log::warn!(
                "DoH server {host} left out: {}; trying again in {} s",
                j.status,
                (j.due
                    .map_or(0, |d| d.saturating_duration_since(now).as_secs()))
            ),
        }
    }
}

/// The address in a reply to our query, with its TTL; None if it is not the reply to it.
#[allow(clippy::type_complexity)]
fn answer_address(
    msg: &[u8],
    id: u16,
    name: &NameBuf,
    qtype: u16,
) -> Option<Result<Option<(IpAddr, u32)>, String>> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() || msg[2] & 0x80 == 0 {
        return None;
    }
    let q = read_question(msg, 12).ok()?;
    if q.qtype != qtype || !q.name.as_bytes().eq_ignore_ascii_case(name.as_bytes()) {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Some(Err(format!("answer code {rcode}")));
    }
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = q.end;
    for _ in 0..ancount {
        let Ok(r) = read_record(msg, pos, Section::Answer) else {
            return Some(Err("malformed answer".into()));
        };
        pos = r.end;
        let data = &msg[r.rdata..r.end];
        if r.rtype != qtype || r.class != 1 {
            continue;
        }
        if let Ok(a) = <[u8; 4]>::try_from(data) {
            return Some(Ok(Some((IpAddr::from(a), r.ttl))));
        }
        if let Ok(a) = <[u8; 16]>::try_from(data) {
            return Some(Ok(Some((IpAddr::from(a), r.ttl))));
        }
    }
    Some(Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `id` for doh.example with the given answer records (type, rdata),
    /// each owned by the question name (compression pointer to offset 12), TTL 60.
    fn reply(id: u16, rcode: u8, qtype: u16, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x03DoH\x07example\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for (t, data) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn addresses_are_taken_from_replies_to_our_query_only() {
        let name = NameBuf::from_dotted("doh.example").unwrap();
        let cname: &[u8] = b"\x01x\xc0\x0c";
        let a = reply(
            7,
            0,
            rtype::A,
            &[(rtype::CNAME, cname), (rtype::A, &[192, 0, 2, 9])],
        );
        assert_eq!(
            answer_address(&a, 7, &name, rtype::A),
            Some(Ok(Some(("192.0.2.9".parse().unwrap(), 60))))
        );
        // Another ID, another type, or not a reply: not ours.
        assert_eq!(answer_address(&a, 8, &name, rtype::A), None);
        assert_eq!(answer_address(&a, 7, &name, rtype::AAAA), None);
        let other = NameBuf::from_dotted("other.example").unwrap();
        assert_eq!(answer_address(&a, 7, &other, rtype::A), None);
        let six = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];
        let aaaa = reply(7, 0, rtype::AAAA, &[(rtype::AAAA, &six)]);
        assert_eq!(
            answer_address(&aaaa, 7, &name, rtype::AAAA),
            Some(Ok(Some(("2001:db8::53".parse().unwrap(), 60))))
        );
        assert_eq!(
            answer_address(&reply(7, 0, rtype::A, &[]), 7, &name, rtype::A),
            Some(Ok(None))
        );
        let refused = reply(7, 5, rtype::A, &[]);
        assert_eq!(
            answer_address(&refused, 7, &name, rtype::A),
            Some(Err("answer code 5".into()))
        );
        let mut cut = a.clone();
        cut.truncate(a.len() - 2);
        assert_eq!(
            answer_address(&cut, 7, &name, rtype::A),
            Some(Err("malformed answer".into()))
        );
    }

    fn named(host: &str) -> Named {
        Named {
            port: 443,
            target: Target {
                host: host.into(),
                authority: host.into(),
                path: "/dns-query".into(),
            },
            pins: Vec::new(),
        }
    }

    /// Runs the lookup of job 0 with `reply` answering each query sent: the replies'
    /// (server, type) in order.
    #[test]
    fn lookup_walks_a_then_aaaa_over_the_servers_and_keeps_the_ttl_bounded() {
        let s1: SocketAddr = "127.0.0.1:5301".parse().unwrap();
        let s2: SocketAddr = "127.0.0.1:5302".parse().unwrap();
        let t0 = Instant::now();
        let mut b = Boot::default();
        assert!(b
            .configure(vec![named("doh.example")], vec![s1, s2], t0)
            .is_empty());
        assert!(b.resolving());
        let (close, send) = b.tick(t0, false);
        assert!(close.is_empty() && send.len() == 1 && send[0].server == s1);
        let mut more = Vec::new();
        b.sent(&send[0], Some(40), t0, &mut more);
        // s1 is silent: after a second, s2 is asked A.
        let t1 = t0 + TRY_TIMEOUT;
        let (close, send) = b.tick(t1, false);
        assert_eq!(close, vec![40]);
        assert_eq!(send.len(), 1);
        assert_eq!(send[0].server, s2);
        b.sent(&send[0], Some(41), t1, &mut more);
        // s2 knows no A: then AAAA from s1.
        let m = &send[0].msg;
        let id = u16::from_be_bytes([m[0], m[1]]);
        let empty = reply(id, 0, rtype::A, &[]);
        assert_eq!(b.answer(send[0].owner, &empty, t1, &mut more), Some(()));
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].server, s1);
        let m = &more[0].msg;
        assert_eq!(
            u16::from_be_bytes([m[m.len() - 4], m[m.len() - 3]]),
            rtype::AAAA
        );
        let mut none = Vec::new();
        b.sent(&more[0], Some(42), t1, &mut none);
        let id = u16::from_be_bytes([m[0], m[1]]);
        // A forged reply (wrong ID) is read past; the real one counts.
        let six = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];
        let forged = reply(id.wrapping_add(1), 0, rtype::AAAA, &[(rtype::AAAA, &six)]);
        assert_eq!(b.answer(more[0].owner, &forged, t1, &mut none), None);
        let good = reply(id, 0, rtype::AAAA, &[(rtype::AAAA, &six)]);
        assert_eq!(b.answer(more[0].owner, &good, t1, &mut none), Some(()));
        assert!(none.is_empty());
        assert_eq!(b.changes.len(), 1);
        // Queries still wait until the daemon has taken the new address.
        assert!(b.resolving());
        assert!(std::mem::take(&mut b.settled_news));
        assert!(!b.resolving());
        // TTL 60 is kept: looked up again 60 s later, not before.
        assert_eq!(b.next_deadline(), Some(t1 + Duration::from_secs(60)));
        let (_, send) = b.tick(t1 + Duration::from_secs(59), false);
        assert!(send.is_empty());
        let (_, send) = b.tick(t1 + Duration::from_secs(60), true);
        assert!(send.is_empty(), "nothing is sent while the link is down");
        let (_, send) = b.tick(t1 + Duration::from_secs(60), false);
        assert_eq!(send.len(), 1);
    }

    #[test]
    fn a_failed_lookup_settles_and_retries_later_with_backoff() {
        let s1: SocketAddr = "127.0.0.1:5301".parse().unwrap();
        let t0 = Instant::now();
        let mut b = Boot::default();
        b.configure(vec![named("doh.example")], vec![s1], t0);
        let mut now = t0;
        let (_, mut send) = b.tick(now, false);
        // Two rounds of A and AAAA, each unanswered.
        for _ in 0..2 * ROUNDS {
            assert_eq!(send.len(), 1);
            let mut more = Vec::new();
            b.sent(&send[0], Some(1), now, &mut more);
            now += TRY_TIMEOUT;
            send = b.tick(now, false).1;
        }
        assert!(send.is_empty() && b.resolving());
        // Once the daemon has taken the news, queries no longer wait: they fail.
        assert!(std::mem::take(&mut b.settled_news));
        assert!(!b.resolving());
        assert_eq!(b.next_deadline(), Some(now + RETRY_FIRST));
        assert_eq!(b.unresolved()[0].1, "no bootstrap server answered");
    }

    #[test]
    fn repeated_connect_failures_look_the_name_up_again() {
        let t0 = Instant::now();
        let mut b = Boot::default();
        let addr: SocketAddr = "192.0.2.1:443".parse().unwrap();
        b.configure(vec![named("doh.example")], vec![addr], t0);
        b.jobs[0].addr = Some(addr);
        b.jobs[0].due = Some(t0 + Duration::from_secs(600));
        for _ in 0..CONNECT_FAILS_TO_RELOOK - 1 {
            b.connect_failed(addr, t0);
        }
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_secs(600)));
        b.connect_failed(addr, t0);
        assert_eq!(b.next_deadline(), Some(t0));
    }
}
