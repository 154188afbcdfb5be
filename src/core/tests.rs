//! The core's decisions on a virtual clock: one real `Instant` as the origin, every other
//! moment an offset from it, so nothing waits and nothing depends on the machine's speed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::link::{Detector, Verdict};
use super::upstreams::*;

/// Draws spread evenly over their range (a linear congruential sequence), repeatable.
struct Spread(u64);

impl Draw for Spread {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(n)) as u32
    }
}

/// Scripted draws: the values given, in a loop.
struct Script(Vec<u32>, usize);

impl Draw for Script {
    fn below(&mut self, n: u32) -> u32 {
        let v = self.0[self.1 % self.0.len()];
        self.1 += 1;
        v % n
    }
}

fn ups(n: u16) -> Upstreams {
    let mut u = Upstreams::default();
    let addrs: Vec<SocketAddr> = (0..n)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 5300 + i)))
        .collect();
    u.set(&addrs);
    u
}

fn id(u: &Upstreams, i: usize) -> UpstreamId {
    u.list[i].id
}

#[test]
fn fastest_healthy_server_is_preferred() {
    let mut u = ups(3);
    let now = Instant::now();
    let (a, b, c) = (id(&u, 0), id(&u, 1), id(&u, 2));
    u.on_answer(a, Duration::from_millis(90), now);
    u.on_answer(b, Duration::from_millis(5), now);
    u.on_answer(c, Duration::from_millis(50), now);
    // Any draw but 0 keeps the best; a 0 re-probes one of the others.
    assert_eq!(u.pick(&[], &mut Script(vec![1], 0)), Some(b));
    assert_eq!(u.pick(&[], &mut Script(vec![31], 0)), Some(b));
    assert_eq!(u.pick(&[], &mut Script(vec![0, 0], 0)), Some(a));
    assert_eq!(u.pick(&[], &mut Script(vec![0, 1], 0)), Some(c));
    // With evenly spread numbers: mostly the best, never anything unknown.
    let mut rng = Spread(12345);
    let picks: Vec<_> = (0..200).map(|_| u.pick(&[], &mut rng).unwrap()).collect();
    assert!(picks.iter().filter(|&&p| p == b).count() > 150);
    assert!(picks.iter().all(|p| [a, b, c].contains(p)));
    // A failing server loses its place.
    for _ in 0..3 {
        u.on_timeout(b);
    }
    assert!(!u.get(b).unwrap().is_up());
    assert_eq!(u.pick(&[], &mut Script(vec![1], 0)), Some(c));
}

#[test]
fn retries_go_to_untried_servers_then_round_again() {
    let u = ups(2);
    let mut d = Script(vec![0], 0);
    let first = u.pick(&[], &mut d).unwrap();
    let second = u.pick(&[first], &mut d).unwrap();
    assert_ne!(first, second);
    let third = u.pick(&[first, second], &mut d).unwrap();
    assert_eq!(third, first);
    let fourth = u.pick(&[first, second, first], &mut d).unwrap();
    assert_eq!(fourth, second);
    assert_eq!(ups(0).pick(&[], &mut d), None);
}

#[test]
fn ids_survive_a_rebuilt_list() {
    let mut u = ups(2);
    let (a, b) = (id(&u, 0), id(&u, 1));
    u.list[1].srtt_ms = 7;
    let (addr_a, addr_b) = (u.list[0].addr, u.list[1].addr);
    let addr_c = SocketAddr::from(([127, 0, 0, 1], 5400));
    // The list is rebuilt: b moves to the front, a new server takes position 1.
    u.set(&[addr_b, addr_c]);
    assert_eq!(u.list.len(), 2);
    assert_eq!((u.list[0].id, u.list[0].srtt_ms), (b, 7));
    let c = id(&u, 1);
    assert!(c != a && c != b, "a new server gets a new id");
    // An answer for b (sent before the rebuild) is charged to b, one for a to nobody.
    let now = Instant::now();
    u.on_answer(b, Duration::from_millis(20), now);
    u.on_answer(a, Duration::from_millis(20), now);
    u.on_timeout(a);
    assert_eq!(u.get(b).map(|s| s.answers), Some(1));
    assert_eq!(u.get(c).map(|s| (s.answers, s.timeouts)), Some((0, 0)));
    assert!(u.get(a).is_none());
    // A server that comes back later is a new server.
    u.set(&[addr_a]);
    assert!(u.list[0].id != a);
    // Retries that only tried servers no longer configured still find one.
    assert_eq!(u.pick(&[a, b], &mut Script(vec![0], 0)), Some(u.list[0].id));
}

#[test]
fn edns_off_for_a_while_after_formerr() {
    let mut s = Upstream::new(1, SocketAddr::from(([127, 0, 0, 1], 53)));
    let now = Instant::now();
    assert!(s.edns(now));
    s.no_edns_until = Some(now + NO_EDNS_FOR);
    assert!(!s.edns(now));
    assert!(!s.edns(now + NO_EDNS_FOR - Duration::from_secs(1)));
    assert!(s.edns(now + NO_EDNS_FOR));
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

#[test]
fn one_silent_name_is_not_a_dead_link() {
    let t0 = Instant::now();
    let mut d = Detector::default();
    d.answered(t0);
    // Quiet LAN: the next question comes 60 s later and its name is dropped; its
    // timeouts make every server look down, which only makes the link suspect.
    assert_eq!(d.all_failing(secs(t0, 62.1), t0), Verdict::Probe);
    assert_eq!(d.tick(secs(t0, 63.0)), Verdict::Nothing);
    // The probe is answered: nothing to confirm any more.
    d.answered(secs(t0, 62.2));
    assert_eq!(d.tick(secs(t0, 70.0)), Verdict::Nothing);
    assert_eq!(d.all_failing(secs(t0, 64.0), t0), Verdict::Nothing);
}

#[test]
fn a_dead_link_goes_down_when_the_probe_is_silent_too() {
    let t0 = Instant::now();
    let mut d = Detector::default();
    // Just started, nothing answered yet: not before AUTO_DOWN_AFTER.
    assert_eq!(d.all_failing(secs(t0, 2.0), t0), Verdict::Nothing);
    assert_eq!(d.all_failing(secs(t0, 3.0), t0), Verdict::Probe);
    assert_eq!(d.all_failing(secs(t0, 4.0), t0), Verdict::Nothing);
    assert_eq!(d.tick(secs(t0, 4.9)), Verdict::Nothing);
    assert_eq!(d.tick(secs(t0, 5.0)), Verdict::Down);
    // Decided once.
    assert_eq!(d.tick(secs(t0, 6.0)), Verdict::Nothing);
    // The timeout path decides as well as the clock.
    let mut d = Detector::default();
    d.answered(t0);
    assert_eq!(d.all_failing(secs(t0, 10.0), t0), Verdict::Probe);
    assert_eq!(d.all_failing(secs(t0, 12.5), t0), Verdict::Down);
}

#[test]
fn reset_and_clear_forget_a_suspicion() {
    let t0 = Instant::now();
    let mut d = Detector::default();
    assert_eq!(d.all_failing(secs(t0, 5.0), t0), Verdict::Probe);
    d.clear_suspicion();
    assert_eq!(d.tick(secs(t0, 9.0)), Verdict::Nothing);
    assert_eq!(d.all_failing(secs(t0, 9.0), t0), Verdict::Probe);
    d.reset(secs(t0, 9.5));
    assert_eq!(d.tick(secs(t0, 20.0)), Verdict::Nothing);
    // Quiet counts from the reset.
    assert_eq!(d.all_failing(secs(t0, 11.0), t0), Verdict::Nothing);
}

/// A question nobody answers, on a virtual clock: each attempt waits twice as long as
/// the one before (from the server's RTO, at most 2 s), until the attempts or the
/// deadline run out.
#[test]
fn retransmits_back_off_until_the_deadline() {
    use super::retry::{next_timeout, MAX_ATTEMPTS, QUERY_DEADLINE};
    let t0 = Instant::now();
    let deadline = t0 + QUERY_DEADLINE;
    // A server never heard from: RTO 300 ms.
    let rto = Upstream::new(1, SocketAddr::from(([127, 0, 0, 1], 53))).rto();
    assert_eq!(rto, Duration::from_millis(300));
    let sends = |rto: Duration| {
        let mut now = t0;
        let mut sent = Vec::new();
        for attempts in 1..=MAX_ATTEMPTS {
            if now >= deadline {
                break;
            }
            sent.push(now.duration_since(t0).as_millis());
            now = next_timeout(now, rto, attempts, deadline);
        }
        (sent, now)
    };
    // The fourth attempt's wait (2.4 s, capped at 2 s) reaches the deadline: given up.
    assert_eq!(sends(rto), (vec![0, 300, 900, 2100], deadline));
    // A fast server's attempts go out sooner; the backoff stops doubling at the fourth.
    let fast = Duration::from_millis(150);
    assert_eq!(sends(fast), (vec![0, 150, 450, 1050, 2250, 3450], deadline));
    // A very fast one runs out of attempts before the deadline.
    let (sent, _) = sends(Duration::from_millis(100));
    assert_eq!(sent.len(), MAX_ATTEMPTS);
    // The wait is capped at 2 s, and never reaches past the deadline.
    let slow = Duration::from_millis(1500);
    assert_eq!(
        next_timeout(t0, slow, 3, deadline),
        t0 + Duration::from_millis(2000)
    );
    let late = t0 + Duration::from_millis(3900);
    assert_eq!(next_timeout(late, slow, 1, deadline), deadline);
}

/// Serve-stale on the cache clock (seconds): an answer with TTL 60 inserted at 1000 is
/// fresh until 1060, then served stale for `stale_max` seconds, then not at all.
#[test]
fn stale_answers_for_stale_max_seconds_after_expiry() {
    use super::stale::stale_age;
    let (inserted, ttl, stale_max) = (1000u32, 60u32, 3600u32);
    let expires = inserted + ttl;
    let at = |now| stale_age(expires, false, now, stale_max);
    assert_eq!(at(inserted), None, "fresh");
    assert_eq!(at(expires - 1), None, "fresh");
    assert_eq!(at(expires), Some(0));
    assert_eq!(at(expires + 1), Some(1));
    assert_eq!(at(expires + stale_max), Some(stale_max));
    assert_eq!(at(expires + stale_max + 1), None, "too old");
    // A remembered SERVFAIL is never served stale; stale_max 0 turns it off.
    assert_eq!(stale_age(expires, true, expires + 1, stale_max), None);
    assert_eq!(stale_age(expires, false, expires, 0), None);
}

/// Prefetch: a second hit in the last tenth of the lifetime refreshes the entry.
#[test]
fn prefetch_in_the_last_tenth_of_the_lifetime_after_a_second_ask() {
    use super::stale::wants_prefetch;
    let lifetime = 100;
    assert!(
        !wants_prefetch(true, false, 1, 10, lifetime),
        "10 % left is not under 10 %"
    );
    assert!(wants_prefetch(true, false, 1, 9, lifetime));
    assert!(
        !wants_prefetch(true, false, 0, 9, lifetime),
        "asked once only"
    );
    assert!(
        !wants_prefetch(true, true, 5, 1, lifetime),
        "failures are not prefetched"
    );
    assert!(
        !wants_prefetch(false, false, 5, 1, lifetime),
        "prefetch off"
    );
    // Large lifetimes do not overflow.
    assert!(wants_prefetch(true, false, 1, u32::MAX / 11, u32::MAX));
}

/// Down by itself, the link is probed once every 5 s on the housekeeping tick (once a
/// second), never more often, and not at all while told down or after it came back.
#[test]
fn probes_every_five_seconds_while_down_by_itself() {
    use super::link::{Link, PROBE_EVERY};
    assert_eq!(PROBE_EVERY, Duration::from_secs(5));
    let t0 = Instant::now();
    let mut l = Link::default();
    // Up: no probe, whatever the time.
    assert!(!l.probe_due(secs(t0, 100.0)));
    l.went_auto_down(t0);
    assert_eq!(l.since, Some(t0));
    // Twenty housekeeping ticks, one a second: probes at 5, 10, 15 and 20 s.
    let probes: Vec<u64> = (1..=20)
        .filter(|&s| l.probe_due(secs(t0, s as f64)))
        .collect();
    assert_eq!(probes, vec![5, 10, 15, 20]);
    // A late tick (the loop was busy) probes at once, and the next is 5 s after it.
    assert!(l.probe_due(secs(t0, 27.3)));
    assert!(!l.probe_due(secs(t0, 32.2)));
    assert!(l.probe_due(secs(t0, 32.3)));
    // Told down as well: nothing goes out at all.
    l.told_down = true;
    assert!(!l.probe_due(secs(t0, 60.0)));
    // Back up: no probes.
    l.told_down = false;
    l.auto_down = false;
    assert!(!l.probe_due(secs(t0, 90.0)));
}

/// After link up the stale entries are refreshed most used first, at most 64 of them and
/// at most 8 per housekeeping tick.
#[test]
fn link_up_refresh_is_most_used_first_bounded_and_paced() {
    use super::link::{Link, REFRESH_MAX, REFRESH_PER_TICK};
    use crate::cache::Key;
    let key = |i: u16| Key::new(&[1, b'a' + (i % 26) as u8, 0], i, 1, 0);
    // 72 stale entries; entry i was hit (i * 7) % 73 times: all counts differ.
    let hits = |i: u16| (i * 7) % 73;
    let mut l = Link::default();
    l.queue_refresh((0..72).map(|i| (hits(i), key(i))).collect());
    let mut ticks: Vec<Vec<u16>> = Vec::new();
    for _ in 0..20 {
        let mut done = 0;
        let mut tick = Vec::new();
        while let Some(k) = l.next_refresh(done) {
            done += 1;
            tick.push(k.qtype());
        }
        if tick.is_empty() {
            break;
        }
        ticks.push(tick);
    }
    assert_eq!(ticks.len(), REFRESH_MAX / REFRESH_PER_TICK);
    assert!(ticks.iter().all(|t| t.len() == REFRESH_PER_TICK));
    let order: Vec<u16> = ticks.concat();
    assert_eq!(order.len(), REFRESH_MAX);
    // In order of use, and the 8 least used are left out.
    let counts: Vec<u16> = order.iter().map(|&i| hits(i)).collect();
    assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
    let mut all: Vec<u16> = (0..72).map(hits).collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(counts, all[..REFRESH_MAX]);
    // Fewer candidates than one tick's worth: all in the first tick.
    l.queue_refresh(vec![(1, key(1)), (9, key(2)), (3, key(3))]);
    let mut got = Vec::new();
    while let Some(k) = l.next_refresh(got.len()) {
        got.push(k.qtype());
    }
    assert_eq!(got, vec![2, 3, 1]);
}

/// How an attempt travels, as far as these tests care: the core takes the shell's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Udp,
}

/// The failure answer a question keeps: the core only holds it.
struct Failure;

use super::inflight::{Attempt, Pending};

/// An attempt for `name` (as sent) with id 0x1234, and its question (A, IN).
fn attempt(name: &str, exact_case: bool) -> (Attempt<Via>, Pending<Via, Failure>) {
    use crate::cache::Key;
    use crate::wire::NameBuf;
    let t0 = Instant::now();
    let name = NameBuf::from_dotted(name).unwrap();
    let a = Attempt {
        upstream: ups(1).list[0].id,
        addr: SocketAddr::from(([127, 0, 0, 1], 53)),
        id: 0x1234,
        name: name.clone(),
        exact_case,
        edns: false,
        open: true,
        sent_at: t0,
        proto: Via::Udp,
    };
    let p = Pending {
        gen: 1,
        key: Key::new(name.as_bytes(), 1, 1, 0),
        name,
        qtype: 1,
        qclass: 1,
        do_bit: false,
        cd: false,
        waiters: Vec::new(),
        attempts: Vec::new(),
        next_timeout: t0,
        deadline: t0,
        last_failure: None,
        held: false,
        max_attempts: 1,
        stale_at: None,
        no_0x20: false,
    };
    (a, p)
}

/// An answer (QR set, no records) with `id` to the question `name`/`qtype`.
fn answer(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    let n = crate::wire::NameBuf::from_dotted(name).unwrap();
    crate::wire::build::query(&mut m, id, &n, qtype, 1, true, false);
    m[2] |= 0x80;
    m
}

/// RFC 5452 matching of an upstream message to the attempt it came for: ID, question,
/// and with 0x20 the exact case of the name.
#[test]
fn an_answer_must_match_id_question_and_case() {
    use super::inflight::{check, Verdict};
    let (a, p) = attempt("wWw.ExAmple.test", true);
    assert_eq!(
        check(&answer(0x1234, "wWw.ExAmple.test", 1), &a, &p),
        Verdict::Match
    );
    // The case not echoed: right question, but not a match under 0x20.
    assert_eq!(
        check(&answer(0x1234, "www.example.test", 1), &a, &p),
        Verdict::CaseChanged
    );
    let (plain, p2) = attempt("wWw.ExAmple.test", false);
    assert_eq!(
        check(&answer(0x1234, "www.example.test", 1), &plain, &p2),
        Verdict::Match
    );
    // Wrong ID, name, type; a query rather than an answer; garbage.
    assert_eq!(
        check(&answer(0x1235, "wWw.ExAmple.test", 1), &a, &p),
        Verdict::Mismatch
    );
    assert_eq!(
        check(&answer(0x1234, "wWw.ExAmple.tesT.x", 1), &a, &p),
        Verdict::Mismatch
    );
    assert_eq!(
        check(&answer(0x1234, "wWw.ExAmple.test", 28), &a, &p),
        Verdict::Mismatch
    );
    // Our name's bytes as the start of a longer name, and our name in another class:
    // the bytes compared in place must not settle either.
    assert_eq!(
        check(&answer(0x1234, "wWw.ExAmple.test.x", 1), &a, &p),
        Verdict::Mismatch
    );
    let mut chaos = answer(0x1234, "wWw.ExAmple.test", 1);
    let name_len = crate::wire::NameBuf::from_dotted("wWw.ExAmple.test")
        .unwrap()
        .len();
    chaos[crate::wire::HEADER_LEN + name_len + 3] = 3;
    assert_eq!(check(&chaos, &a, &p), Verdict::Mismatch);
    let mut q = answer(0x1234, "wWw.ExAmple.test", 1);
    q[2] &= 0x7f;
    assert_eq!(check(&q, &a, &p), Verdict::Mismatch);
    let whole = answer(0x1234, "wWw.ExAmple.test", 1);
    for n in 0..whole.len() {
        assert_eq!(check(&whole[..n], &a, &p), Verdict::Mismatch, "cut at {n}");
    }
    // Two questions: not an answer to ours.
    let mut two = whole.clone();
    two[5] = 2;
    assert_eq!(check(&two, &a, &p), Verdict::Mismatch);
}

/// A question for `name` asked at `t0`, with one client waiting.
fn question(name: &str, t0: Instant) -> Pending<Via, Failure> {
    use super::inflight::{ReplyTo, Waiter};
    use crate::cache::Key;
    use crate::wire::NameBuf;
    let name = NameBuf::from_dotted(name).unwrap();
    let w = Waiter {
        to: ReplyTo::Udp {
            listener: 0,
            peer: SocketAddr::from(([192, 168, 1, 10], 40000)),
        },
        id: 7,
        rd: true,
        cd: false,
        #[cfg(feature = "dnssec")]
        ad: false,
        opt: None,
        name: name.clone(),
    };
    let key = Key::new(name.as_bytes(), 1, 1, 0);
    Pending::new(3, &key, name, Some(w), t0)
}

/// The offline policy: while down a miss is held (`offline_policy hold`) or failed at
/// once; without servers it fails at once unless held for the link to bring some.
#[test]
fn offline_misses_are_held_or_failed_at_once() {
    use super::timers::{on_miss, OnMiss};
    // (offline, hold policy, servers, none yet but one being looked up) -> what the miss gets.
    assert_eq!(on_miss(false, false, true, false), OnMiss::Forward);
    assert_eq!(on_miss(false, true, true, false), OnMiss::Forward);
    assert_eq!(on_miss(true, false, true, false), OnMiss::LinkDown);
    assert_eq!(on_miss(true, true, true, false), OnMiss::Hold);
    assert_eq!(on_miss(false, false, false, false), OnMiss::NoServers);
    assert_eq!(on_miss(false, true, false, false), OnMiss::NoServers);
    assert_eq!(on_miss(true, false, false, false), OnMiss::LinkDown);
    assert_eq!(on_miss(true, true, false, false), OnMiss::Hold);
    // A DoH server's address being looked up: the miss waits for it, unless the link is
    // down without the hold policy; with servers already there it is simply forwarded.
    assert_eq!(on_miss(false, false, false, true), OnMiss::Hold);
    assert_eq!(on_miss(false, true, false, true), OnMiss::Hold);
    assert_eq!(on_miss(true, false, false, true), OnMiss::LinkDown);
    assert_eq!(on_miss(true, true, false, true), OnMiss::Hold);
    assert_eq!(on_miss(false, false, true, true), OnMiss::Forward);
}

/// A held question sends nothing and fails when `hold_timeout` passes, not at the
/// normal 4 s deadline; released before that, it gets a fresh deadline from the moment
/// the link came back, and its old hold timer is ignored.
#[test]
fn held_question_waits_hold_timeout_then_fails() {
    use super::retry::QUERY_DEADLINE;
    use super::timers::OnTimer;
    let t0 = Instant::now();
    let mut p = question("held.example.test", t0);
    assert_eq!(p.deadline, t0 + QUERY_DEADLINE);
    assert!(!p.exhausted(t0));
    // hold_timeout 10 (the default): the timer fires at 10 s, and only then gives up.
    let at = p.hold(t0, Duration::from_secs(10));
    assert_eq!(at, secs(t0, 10.0));
    assert_eq!(p.timer_fired(3, secs(t0, 4.0)), OnTimer::Ignore);
    assert_eq!(p.timer_fired(3, secs(t0, 9.999)), OnTimer::Ignore);
    assert_eq!(p.timer_fired(3, at), OnTimer::HoldExpired);
    assert_eq!(
        p.timer_fired(2, at),
        OnTimer::Ignore,
        "another question's timer"
    );
    // The link comes back at 6 s: the question goes upstream with 4 s from then.
    assert!(p.release(secs(t0, 6.0)));
    assert!(!p.release(secs(t0, 6.5)), "released once");
    assert_eq!(p.deadline, secs(t0, 6.0) + QUERY_DEADLINE);
    assert!(!p.exhausted(secs(t0, 9.9)));
    assert!(p.exhausted(secs(t0, 10.0)));
    // The old hold timer, fired at 10 s, is now a retransmit timeout, not a hold expiry.
    assert_eq!(p.timer_fired(3, at), OnTimer::Retransmit);
    // hold_timeout 1 (the least the config takes): fails after 1 s.
    let mut q = question("short.example.test", t0);
    let at = q.hold(secs(t0, 2.0), Duration::from_secs(1));
    assert_eq!(at, secs(t0, 3.0));
    assert_eq!(q.timer_fired(3, secs(t0, 2.9)), OnTimer::Ignore);
    assert_eq!(q.timer_fired(3, secs(t0, 3.0)), OnTimer::HoldExpired);
}

/// Serve-stale's client-response timer (RFC 8767, `stale_timeout`): it fires once at
/// the set time and hands over the clients waiting then; the question stays in flight
/// for the cache, and a stale timer of an older question in the same slot does nothing.
#[test]
fn stale_timer_answers_the_waiting_clients_once() {
    let t0 = Instant::now();
    let mut p = question("short.example.test", t0);
    assert!(p.stale_timer_fired(3).is_none(), "no stale entry: no timer");
    let at = p.arm_stale_timer(t0, Duration::from_millis(1800));
    assert_eq!(at, secs(t0, 1.8));
    assert!(
        at < p.deadline,
        "the stale answer comes before the upstream is given up"
    );
    assert_eq!(
        p.stale_timer_fired(2).map(|w| w.len()),
        None,
        "an older question's timer"
    );
    assert_eq!(p.stale_timer_fired(3).map(|w| w.len()), Some(1));
    assert!(p.waiters.is_empty() && p.stale_at.is_none());
    assert_eq!(p.stale_timer_fired(3).map(|w| w.len()), None, "fires once");
    // stale_timeout 0: the stale answer goes out at once, the question still goes on.
    let mut q = question("zero.example.test", t0);
    assert_eq!(
        q.arm_stale_timer(secs(t0, 1.0), Duration::ZERO),
        secs(t0, 1.0)
    );
    assert_eq!(q.stale_timer_fired(3).map(|w| w.len()), Some(1));
    assert!(!q.exhausted(secs(t0, 1.0)));
}

/// Retransmission: the timer of the last attempt asks for the next one once it is due,
/// and the question is out of attempts at its limit or at the deadline.
#[test]
fn retransmit_timer_fires_when_due_until_attempts_run_out() {
    use super::timers::OnTimer;
    let t0 = Instant::now();
    let (a, _) = attempt("r.example.test", false);
    let mut p = question("r.example.test", t0);
    p.max_attempts = 2;
    p.next_timeout = secs(t0, 0.3);
    assert_eq!(
        p.timer_fired(3, secs(t0, 0.2)),
        OnTimer::Ignore,
        "re-armed later"
    );
    assert_eq!(p.timer_fired(3, secs(t0, 0.3)), OnTimer::Retransmit);
    p.attempts.push(a);
    assert!(!p.exhausted(secs(t0, 0.3)));
    let (b, _) = attempt("r.example.test", false);
    p.attempts.push(b);
    assert!(p.exhausted(secs(t0, 0.3)), "attempts spent");
}

/// The link on a virtual clock, driven as the event loop drives it: attempt timeouts
/// with every server failing, housekeeping ticks once a second, an answer. Down by
/// itself 3 s + 2 s into the silence, probed every 5 s, up at the first answer; told
/// down, it neither probes nor refreshes, and told up it says it was offline.
#[test]
fn link_goes_down_by_itself_probes_and_comes_back_at_the_first_answer() {
    use super::link::{Link, Tick};
    let t0 = Instant::now();
    let mut l = Link::default();
    // Up, every server answering: the tick refreshes, a timeout changes nothing.
    assert_eq!(l.tick(secs(t0, 1.0), true), Tick::Refresh);
    assert_eq!(
        l.after_timeout(secs(t0, 1.0), t0, true, true),
        Verdict::Nothing
    );
    // No servers configured: no verdict, whatever the silence.
    assert_eq!(
        l.after_timeout(secs(t0, 9.0), t0, false, false),
        Verdict::Nothing
    );
    // Every server failing: suspect 3 s into the silence (a probe), down 2 s later.
    assert_eq!(
        l.after_timeout(secs(t0, 2.9), t0, true, false),
        Verdict::Nothing
    );
    assert_eq!(
        l.after_timeout(secs(t0, 3.0), t0, true, false),
        Verdict::Probe
    );
    assert_eq!(l.tick(secs(t0, 4.0), false), Tick::Refresh);
    assert_eq!(l.tick(secs(t0, 4.99), false), Tick::Refresh);
    assert_eq!(l.tick(secs(t0, 5.0), false), Tick::Down);
    l.went_auto_down(secs(t0, 5.0));
    assert!(l.offline() && l.probing());
    // Offline: timeouts give no verdict; timed probes at 10 and 15 s.
    assert_eq!(
        l.after_timeout(secs(t0, 6.0), t0, true, false),
        Verdict::Nothing
    );
    let ticks: Vec<Tick> = (6..=15)
        .map(|s| l.tick(secs(t0, s as f64), false))
        .collect();
    let probes: Vec<usize> = ticks
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Tick::Probe)
        .map(|(i, _)| i + 6)
        .collect();
    assert_eq!(probes, vec![10, 15]);
    assert!(ticks.iter().all(|t| matches!(t, Tick::Probe | Tick::Wait)));
    // The first answer ends the outage; then the link is up with a fresh quiet spell.
    assert!(l.answered(secs(t0, 15.2)));
    assert!(l.came_up(secs(t0, 15.2)));
    assert_eq!(l.since, Some(secs(t0, 15.2)));
    assert!(
        !l.offline() && !l.answered(secs(t0, 15.3)),
        "up: an answer is just an answer"
    );
    assert_eq!(
        l.after_timeout(secs(t0, 18.2), t0, true, false),
        Verdict::Nothing
    );
    assert_eq!(
        l.after_timeout(secs(t0, 18.3), t0, true, false),
        Verdict::Probe
    );
    // A server that answers clears the suspicion at the next tick: no Down 2 s later.
    assert_eq!(l.tick(secs(t0, 19.0), true), Tick::Refresh);
    assert_eq!(l.tick(secs(t0, 21.0), false), Tick::Refresh);
    // Told down: no probes, no refresh, no verdicts; the refresh queue is dropped.
    l.refresh
        .push(crate::cache::Key::new(b"\x01a\x00", 1, 1, 0));
    assert!(l.told_down(secs(t0, 30.0)));
    assert!(!l.told_down(secs(t0, 31.0)), "told twice: once newly");
    assert_eq!(l.since, Some(secs(t0, 30.0)));
    assert!(l.refresh.is_empty() && l.offline() && !l.probing());
    assert_eq!(l.tick(secs(t0, 40.0), false), Tick::Idle);
    assert_eq!(
        l.after_timeout(secs(t0, 40.0), t0, true, false),
        Verdict::Nothing
    );
    assert!(
        !l.answered(secs(t0, 40.5)),
        "told down: an answer does not bring it up"
    );
    // Told up: it was offline.
    assert!(l.came_up(secs(t0, 41.0)));
    assert!(!l.came_up(secs(t0, 42.0)), "already up");
    assert_eq!(l.since, Some(secs(t0, 41.0)));
}

/// `stale_exclude`: a zone excludes itself and every name under it, nothing beside it;
/// a name that does not parse is never served stale.
#[test]
fn stale_exclude_covers_the_zone_and_names_under_it() {
    use super::stale::excluded;
    use crate::wire::NameBuf;
    let wire = |s: &str| NameBuf::from_dotted(s).unwrap().as_bytes().to_vec();
    let zones = vec![NameBuf::from_dotted("ddns.example.test").unwrap()];
    assert!(excluded(&wire("ddns.example.test"), &zones));
    assert!(excluded(&wire("HOST.Ddns.Example.Test"), &zones));
    assert!(!excluded(&wire("xddns.example.test"), &zones));
    assert!(!excluded(&wire("example.test"), &zones));
    assert!(excluded(b"\x05ab", &zones), "a broken name is excluded");
    assert!(
        !excluded(&wire("ddns.example.test"), &[]),
        "no zones: nothing excluded"
    );
}

/// A reply that asks for another attempt to the same server: FORMERR to a query with
/// EDNS (again without, RFC 6891 7), a truncated answer over UDP (again over TCP).
/// Anything else is an answer for the clients, even FORMERR without EDNS or TC over TCP.
#[test]
fn formerr_to_edns_and_truncation_over_udp_ask_the_same_server_again() {
    use super::retry::{on_reply, OnReply};
    use crate::wire::rcode::{FORMERR, NOERROR, NXDOMAIN, SERVFAIL};
    assert_eq!(
        on_reply(FORMERR, false, true, true),
        OnReply::RetryWithoutEdns
    );
    assert_eq!(
        on_reply(FORMERR, true, true, true),
        OnReply::RetryWithoutEdns
    );
    assert_eq!(
        on_reply(FORMERR, false, true, false),
        OnReply::RetryWithoutEdns
    );
    assert_eq!(on_reply(FORMERR, false, false, true), OnReply::Use);
    assert_eq!(on_reply(NOERROR, true, true, true), OnReply::RetryOverTcp);
    assert_eq!(on_reply(NXDOMAIN, true, false, true), OnReply::RetryOverTcp);
    assert_eq!(
        on_reply(NOERROR, true, true, false),
        OnReply::Use,
        "TC over TCP"
    );
    assert_eq!(on_reply(NOERROR, false, true, true), OnReply::Use);
    assert_eq!(on_reply(SERVFAIL, false, true, true), OnReply::Use);
}

/// An upstream answer to `name` A/AAAA (by the length of `rdata`) with one record of TTL
/// 300, made ready as the shell makes it (`answer::prepare`).
fn prepared(name: &str, rdata: &[u8]) -> crate::answer::Prepared {
    use crate::wire::rtype;
    let qtype = if rdata.len() == 16 {
        rtype::AAAA
    } else {
        rtype::A
    };
    let mut m = answer(7, name, qtype);
    m[7] = 1; // ANCOUNT
    m.extend_from_slice(&[0xc0, 0x0c]);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 1, 44]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
    prepare_defaults(&m)
}

/// Upstream answer `m` prepared with the default TTL policy, no AD trust, no DNSSEC,
/// no respelling and buffers of its own.
fn prepare_defaults(m: &[u8]) -> crate::answer::Prepared {
    let scan = crate::wire::scan_message(m).unwrap();
    crate::answer::prepare(
        m,
        &scan,
        &Default::default(),
        false,
        false,
        None,
        &mut Default::default(),
    )
    .unwrap()
}

/// An upstream answer to `name` A with no record and `rcode`, prepared.
fn prepared_empty(name: &str, rcode: u8) -> crate::answer::Prepared {
    let mut m = answer(7, name, 1);
    m[3] |= rcode;
    prepare_defaults(&m)
}

/// The delivery decision for `p` to the question `name`, online, without validation,
/// with rebinding protection on (localhost not allowed) and `exempt` zones; `stale`
/// says a stale entry is there, and the second value whether it was asked for.
fn decide(
    p: &crate::answer::Prepared,
    name: &str,
    exempt: &[&str],
    stale: bool,
) -> (super::delivery::Decision, bool) {
    use super::delivery::{decide, Answer, Rebind};
    use crate::wire::NameBuf;
    let name = NameBuf::from_dotted(name).unwrap();
    let exempt: Vec<NameBuf> = exempt
        .iter()
        .map(|z| NameBuf::from_dotted(z).unwrap())
        .collect();
    let a = Answer {
        kind: p.kind,
        lifetime: p.lifetime,
        msg: &p.msg,
        name: &name,
        verdict: 0,
        offline: false,
    };
    let rebind = Rebind {
        protection: true,
        localhost: false,
        exempt: &exempt,
    };
    let asked = std::cell::Cell::new(false);
    let d = decide(&a, rebind, || {
        asked.set(true);
        stale
    });
    (d, asked.get())
}

/// What an answer that ends a question becomes: positive and negative answers are
/// cached for their lifetime, failures for FAILURE_TTL (2 s) unless stale data can be
/// served; flags tell negative, failure, learned offline and the validation's verdict.
#[test]
fn delivery_caches_by_kind_and_stale_beats_a_failure() {
    use super::delivery::{Decision, Store, FAILURE_TTL};
    use crate::answer::Kind;
    use crate::cache::flag;
    use crate::wire::rcode::{NOERROR, NXDOMAIN, REFUSED, SERVFAIL};
    assert_eq!(FAILURE_TTL, 2);
    let deliver = |flags, lifetime| Decision::Deliver(Store { flags, lifetime });
    // Positive: its lifetime, no flag; stale data is not even looked up.
    let pos = prepared("www.example.test", &[192, 0, 2, 1]);
    assert_eq!((pos.kind, pos.lifetime), (Kind::Positive, 300));
    assert_eq!(
        decide(&pos, "www.example.test", &[], true),
        (deliver(0, 300), false)
    );
    // Negative without an SOA: not cached (RFC 2308 5), flagged negative.
    let neg = prepared_empty("nx.example.test", NXDOMAIN);
    assert_eq!((neg.kind, neg.lifetime), (Kind::Negative, 0));
    assert_eq!(
        decide(&neg, "nx.example.test", &[], true),
        (deliver(flag::NEGATIVE, 0), false)
    );
    let nodata = prepared_empty("nodata.example.test", NOERROR);
    assert_eq!(nodata.kind, Kind::Negative);
    // Failures (SERVFAIL, REFUSED): remembered 2 s, unless a stale answer is there.
    for rc in [SERVFAIL, REFUSED] {
        let fail = prepared_empty("f.example.test", rc);
        assert_eq!((fail.kind, fail.lifetime), (Kind::Failure, 0));
        assert_eq!(
            decide(&fail, "f.example.test", &[], false),
            (deliver(flag::FAILURE, FAILURE_TTL), true)
        );
        assert_eq!(
            decide(&fail, "f.example.test", &[], true),
            (Decision::ServeStale, true)
        );
    }
    // Offline and the validation's verdict add their flags to the kind's.
    use super::delivery::{decide as decide_raw, Answer, Rebind};
    let name = crate::wire::NameBuf::from_dotted("www.example.test").unwrap();
    let off = Rebind {
        protection: false,
        localhost: false,
        exempt: &[],
    };
    let a = |kind, offline, verdict| Answer {
        kind,
        lifetime: 60,
        msg: &pos.msg,
        name: &name,
        verdict,
        offline,
    };
    let secure = flag::SECURE | flag::VALIDATED;
    assert_eq!(
        decide_raw(&a(Kind::Positive, true, secure), off, || false),
        deliver(secure | flag::OFFLINE, 60)
    );
    assert_eq!(
        decide_raw(&a(Kind::Negative, true, flag::VALIDATED), off, || false),
        deliver(flag::VALIDATED | flag::OFFLINE | flag::NEGATIVE, 60)
    );
    assert_eq!(
        decide_raw(&a(Kind::Failure, true, 0), off, || false),
        deliver(flag::FAILURE | flag::OFFLINE, FAILURE_TTL)
    );
    // Cached with a lifetime only, and never a blocked name (the block list is asked
    // only when it matters).
    let store = |lifetime| Store { flags: 0, lifetime };
    assert!(store(1).cached(|| false));
    assert!(!store(1).cached(|| true));
    assert!(!store(0).cached(|| panic!("no lifetime: the block list is not asked")));
}

/// Rebinding protection: a positive answer with a private address for a public name is
/// refused (NXDOMAIN, EDE 15), unless the name is in an exempt zone, localhost is
/// allowed for 127/8 and ::1, or the protection is off.
#[test]
fn delivery_refuses_private_addresses_for_public_names() {
    use super::delivery::{decide as decide_raw, Answer, Decision, Rebind, Store, EDE_REBIND};
    use crate::wire::NameBuf;
    use std::net::IpAddr;
    assert_eq!(EDE_REBIND.code, 15);
    let refused = |ip: &str| Decision::Refuse(Some(ip.parse::<IpAddr>().unwrap()));
    let ok = Decision::Deliver(Store {
        flags: 0,
        lifetime: 300,
    });
    let name = "evil.example.test";
    let v4 = |a: [u8; 4]| prepared(name, &a);
    let v6 = |s: &str| prepared(name, &s.parse::<std::net::Ipv6Addr>().unwrap().octets());
    assert_eq!(
        decide(&v4([192, 168, 1, 1]), name, &[], false).0,
        refused("192.168.1.1")
    );
    assert_eq!(
        decide(&v4([10, 0, 0, 1]), name, &[], false).0,
        refused("10.0.0.1")
    );
    assert_eq!(
        decide(&v4([127, 0, 0, 1]), name, &[], false).0,
        refused("127.0.0.1")
    );
    assert_eq!(
        decide(&v6("fd00::1"), name, &[], false).0,
        refused("fd00::1")
    );
    assert_eq!(decide(&v6("::1"), name, &[], false).0, refused("::1"));
    assert_eq!(decide(&v4([192, 0, 2, 1]), name, &[], false).0, ok);
    assert_eq!(decide(&v6("2001:db8::1"), name, &[], false).0, ok);
    // Exempt: the zone itself and names under it, nothing beside it.
    let private = v4([192, 168, 1, 1]);
    assert_eq!(decide(&private, name, &["example.test"], false).0, ok);
    assert_eq!(decide(&private, name, &["evil.example.test"], false).0, ok);
    assert_eq!(
        decide(&private, name, &["vil.example.test", "other.test"], false).0,
        refused("192.168.1.1")
    );
    // rebind_localhost lets loopback by, nothing else; protection off lets all by.
    let n = NameBuf::from_dotted(name).unwrap();
    let with = |p: &crate::answer::Prepared, protection, localhost| {
        let a = Answer {
            kind: p.kind,
            lifetime: p.lifetime,
            msg: &p.msg,
            name: &n,
            verdict: 0,
            offline: false,
        };
        let r = Rebind {
            protection,
            localhost,
            exempt: &[],
        };
        decide_raw(&a, r, || false)
    };
    assert_eq!(with(&v4([127, 0, 0, 1]), true, true), ok);
    assert_eq!(with(&v6("::1"), true, true), ok);
    assert_eq!(with(&private, true, true), refused("192.168.1.1"));
    assert_eq!(with(&private, false, false), ok);
    // An answer that does not scan is refused, not let by (and names no address).
    let broken = crate::answer::Prepared {
        msg: vec![0; 5],
        ..private.clone()
    };
    assert_eq!(with(&broken, true, false), Decision::Refuse(None));
    assert_eq!(with(&broken, false, false), ok);
}

/// A question given up: the failure answer kept from an earlier server, unless stale
/// data can be served; else stale data or SERVFAIL for each waiter.
#[test]
fn given_up_questions_prefer_stale_data_to_a_kept_failure() {
    use super::delivery::{give_up, GiveUp};
    assert_eq!(give_up(false, true), GiveUp::LastFailure);
    assert_eq!(give_up(true, true), GiveUp::StaleOrServfail);
    assert_eq!(give_up(true, false), GiveUp::StaleOrServfail);
    assert_eq!(give_up(false, false), GiveUp::StaleOrServfail);
}

/// One upstream server and the core's link state, upstream health, retransmit timing
/// and questions in flight on a virtual clock, driven as the event loop drives them
/// (`forward`, `link`): a miss goes to the server unless the link is down (then a probe
/// of "." SOA goes out on demand); a retransmit timer charges a timeout to the server
/// and asks the down-detector before the next attempt; the detector's probe ("." NS)
/// and the timed ones get one attempt each; the housekeeping tick runs once a second;
/// the server answers `RTT` after each query unless it is silent or drops the name.
struct Shell {
    t0: Instant,
    now: Instant,
    ups: Upstreams,
    link: super::link::Link,
    /// Questions in flight, with when the server's answer arrives (None: never).
    qs: Vec<(Pending<Via, Failure>, Option<Instant>)>,
    next_tick: Instant,
    gen: u32,
    /// The server answers nothing at all.
    silent: bool,
    /// The one name the server never answers.
    dropped: &'static str,
    /// What the clients and the server saw: (seconds since t0, what).
    log: Vec<(f64, String)>,
}

const RTT: Duration = Duration::from_millis(20);

impl Shell {
    /// The daemon started at `t0` and its server answered a first question then.
    fn new(t0: Instant) -> Shell {
        let mut ups = ups(1);
        let id = ups.list[0].id;
        ups.on_answer(id, RTT, t0);
        let mut link = super::link::Link::default();
        link.answered(t0);
        Shell {
            t0,
            now: t0,
            ups,
            link,
            qs: Vec::new(),
            next_tick: secs(t0, 1.0),
            gen: 0,
            silent: false,
            dropped: "",
            log: Vec::new(),
        }
    }

    fn at(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }

    fn note(&mut self, what: String) {
        let at = self.at();
        self.log.push((at, what));
    }

    /// When (seconds since t0, to the ms) `what` was logged, from `from` seconds on.
    fn seen(&self, from: f64, what: &str) -> Vec<f64> {
        self.log
            .iter()
            .filter(|(t, w)| *t >= from - 1e-6 && w.contains(what))
            .map(|(t, _)| (t * 1000.0).round() / 1000.0)
            .collect()
    }

    /// A client asks `name` A (a miss).
    fn ask(&mut self, name: &str) {
        use super::timers::{on_miss, OnMiss};
        // While down by itself, a client's question checks at once whether it is back.
        if self.link.probing() {
            self.question(".", crate::wire::rtype::SOA, 1);
        }
        match on_miss(self.link.offline(), false, true, false) {
            OnMiss::LinkDown => self.note(format!("SERVFAIL {name} link down")),
            _ => self.question(name, crate::wire::rtype::A, super::retry::MAX_ATTEMPTS),
        }
    }

    /// A question goes upstream (a probe: one attempt), unless it is in flight already.
    fn question(&mut self, name: &str, qtype: u16, max_attempts: usize) {
        let name = crate::wire::NameBuf::from_dotted(name).unwrap();
        let key = crate::cache::Key::new(name.as_bytes(), qtype, 1, 0);
        if self
            .qs
            .iter()
            .any(|(p, _)| p.key.as_bytes() == key.as_bytes())
        {
            return;
        }
        self.gen += 1;
        let mut p = Pending::new(self.gen, &key, name, None, self.now);
        p.max_attempts = max_attempts;
        self.qs.push((p, None));
        self.send(self.qs.len() - 1);
    }

    /// The next attempt of question `i`, or its end when it has none left.
    fn send(&mut self, i: usize) {
        let now = self.now;
        let (p, arrives) = &mut self.qs[i];
        if p.exhausted(now) {
            let what = format!("SERVFAIL {} {}", p.name.to_dotted(), p.qtype);
            self.qs.remove(i);
            return self.note(what);
        }
        let ui = self.ups.pick(&p.tried(), &mut Script(vec![1], 0)).unwrap();
        let u = self.ups.get(ui).unwrap();
        let (a, _) = attempt("x.test", false);
        p.attempts.push(Attempt {
            upstream: ui,
            sent_at: now,
            ..a
        });
        p.next_timeout = super::retry::next_timeout(now, u.rto(), p.attempts.len(), p.deadline);
        let name = p.name.to_dotted();
        let answered = !self.silent && name != self.dropped;
        *arrives = answered.then_some(now + RTT);
        let what = format!("query {name} {}", p.qtype);
        self.note(what);
    }

    /// Runs the loop until `until` seconds after t0.
    fn run(&mut self, until: f64) {
        use super::link::{Tick, Verdict as Link};
        use super::timers::OnTimer;
        let end = secs(self.t0, until);
        loop {
            let answer = self.qs.iter().filter_map(|(_, a)| *a).min();
            let timeout = self.qs.iter().map(|(p, _)| p.next_timeout).min();
            let next = [answer, timeout, Some(self.next_tick)]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            let now = next;
            if answer == Some(now) {
                let i = self.qs.iter().position(|(_, a)| *a == Some(now)).unwrap();
                let (p, _) = self.qs.remove(i);
                let ui = p.attempts.last().unwrap().upstream;
                self.ups.on_answer(ui, RTT, now);
                self.note(format!("answer {} {}", p.name.to_dotted(), p.qtype));
                if self.link.answered(now) {
                    self.link.came_up(now);
                    self.ups.reset_health();
                    self.note("came up".into());
                }
            } else if timeout == Some(now) {
                let i = self
                    .qs
                    .iter()
                    .position(|(p, _)| p.next_timeout == now)
                    .unwrap();
                let (p, _) = &self.qs[i];
                assert_eq!(p.timer_fired(p.gen, now), OnTimer::Retransmit);
                let ui = p.attempts.last().unwrap().upstream;
                self.ups.on_timeout(ui);
                let any_up = self.ups.any_up();
                match self.link.after_timeout(now, self.t0, true, any_up) {
                    Link::Nothing => self.send(i),
                    Link::Probe => {
                        self.question(".", crate::wire::rtype::NS, 1);
                        self.send(i);
                    }
                    Link::Down => self.went_down(),
                }
            } else {
                self.next_tick += Duration::from_secs(1);
                match self.link.tick(now, self.ups.any_up()) {
                    Tick::Probe => self.question(".", crate::wire::rtype::NS, 1),
                    Tick::Down => self.went_down(),
                    Tick::Idle | Tick::Wait | Tick::Refresh => {}
                }
            }
        }
    }

    /// Offline by itself: every question in flight is answered SERVFAIL (offline_policy
    /// fail).
    fn went_down(&mut self) {
        self.link.went_auto_down(self.now);
        self.note("went down".into());
        for (p, _) in std::mem::take(&mut self.qs) {
            let what = format!("SERVFAIL {} {} link down", p.name.to_dotted(), p.qtype);
            self.note(what);
        }
    }
}

/// A quiet LAN and one name the server never answers: its attempts time out until the
/// server counts as down, every server failing makes the link suspect, and the probe's
/// answer shows the link is there. The name gets SERVFAIL at its deadline; the link
/// stays up, and other names are forwarded and answered.
#[test]
fn one_dropped_name_on_a_quiet_lan_keeps_the_link_up() {
    let t0 = Instant::now();
    let mut s = Shell::new(t0);
    s.dropped = "dropped.example.test";
    s.run(60.0);
    s.ask("dropped.example.test");
    s.run(70.0);
    // Attempts at 0, 0.28, 1.2 and 3.2 s (the server's RTO, doubled), to the deadline.
    let q = s.seen(60.0, "query dropped.example.test");
    assert_eq!(q, vec![60.0, 60.28, 61.2, 63.2], "{:?}", s.log);
    // The third timeout makes the server count as down: a probe goes out, answered.
    assert_eq!(s.seen(60.0, "query . 2"), vec![q[3]], "{:?}", s.log);
    assert_eq!(s.seen(60.0, "answer . 2").len(), 1);
    assert_eq!(s.seen(60.0, "SERVFAIL dropped.example.test 1"), vec![64.0]);
    assert!(s.seen(0.0, "went down").is_empty(), "{:?}", s.log);
    assert!(!s.link.offline());
    s.ask("www.example.test");
    s.run(71.0);
    assert_eq!(s.seen(70.0, "answer www.example.test 1").len(), 1);
    // The same without the probe's answer (a silent server) is a dead link.
    let mut s = Shell::new(t0);
    s.silent = true;
    s.run(60.0);
    s.ask("dropped.example.test");
    s.run(70.0);
    assert_eq!(s.seen(60.0, "went down").len(), 1, "{:?}", s.log);
}

/// A server that falls silent: questions time out until the server counts as down,
/// 3 s after the last answer the link is suspect (a probe), and 2 s later, the probe
/// unanswered, it is down by itself at the next housekeeping tick: the questions in
/// flight get SERVFAIL, misses get SERVFAIL at once and are not sent; timed probes
/// every 5 s. When the server answers again, a client's question probes at once and
/// the first answer brings the link up, with the server's health reset.
#[test]
fn a_silent_server_takes_the_link_down_and_the_first_answer_brings_it_back() {
    let t0 = Instant::now();
    let mut s = Shell::new(t0);
    s.silent = true;
    for i in 0..3 {
        s.ask(&format!("lost{i}.example.test"));
    }
    s.run(20.0);
    // The first question's attempts (the server's RTO doubles with each timeout of
    // any question), given up at the 4 s deadline before the link goes down.
    let lost = s.seen(0.0, "query lost0");
    assert_eq!(lost, vec![0.0, 0.28, 1.2, 3.2], "{:?}", s.log);
    assert_eq!(s.seen(0.0, "SERVFAIL lost"), vec![4.0, 4.0, 4.0]);
    // Suspect at the first timeout 3 s after the last answer (t0): the probe at 3.2 s.
    assert_eq!(s.seen(0.0, "query . 2")[0], 3.2);
    // Down at the first tick 2 s after that: 6 s; then a timed probe every 5 s.
    assert_eq!(s.seen(0.0, "went down"), vec![6.0]);
    assert_eq!(s.seen(4.0, "query . 2"), vec![11.0, 16.0]);
    assert!(!s.ups.any_up());
    // Offline: a miss is answered at once and not sent; it probes at once.
    s.run(17.6);
    s.ask("fresh.example.test");
    assert_eq!(
        s.seen(17.6, "SERVFAIL fresh.example.test link down"),
        vec![17.6]
    );
    assert!(s.seen(0.0, "query fresh").is_empty());
    assert_eq!(s.seen(17.6, "query . 6"), vec![17.6]);
    // That probe goes unanswered; the server comes back, and the next question probes
    // at once: up at its answer, not at the next timed probe (21 s).
    s.run(19.5);
    assert_eq!(s.seen(17.6, "SERVFAIL . 6"), vec![19.1]);
    s.silent = false;
    s.ask("short.example.test");
    s.run(19.6);
    assert_eq!(s.seen(19.5, "query . 6"), vec![19.5]);
    assert_eq!(s.seen(19.5, "came up"), vec![19.52]);
    assert!(!s.link.offline() && s.ups.any_up());
    assert_eq!(s.seen(0.0, "went down").len(), 1, "down once");
    // Up again: misses are sent.
    s.ask("short.example.test");
    s.run(20.0);
    assert_eq!(s.seen(19.6, "answer short.example.test 1"), vec![19.62]);
}

/// An attempt over TLS waits four retransmission timeouts, at least a second, where
/// a datagram waits one: a query on a live connection is held, not lost. Capped at
/// the longest wait and at the question's deadline like every other attempt.
#[cfg(feature = "tls")]
#[test]
fn encrypted_attempts_wait_longer_than_datagrams() {
    use super::retry;
    let t0 = Instant::now();
    let deadline = t0 + retry::QUERY_DEADLINE;
    let ms = |d: Instant| d.duration_since(t0).as_millis();
    // A server never heard from (RTO 300 ms) and a fast one (150 ms).
    let (new, fast) = (Duration::from_millis(300), Duration::from_millis(150));
    assert_eq!(ms(retry::next_timeout(t0, new, 1, deadline)), 300);
    assert_eq!(ms(retry::next_encrypted_timeout(t0, new, deadline)), 1200);
    assert_eq!(ms(retry::next_timeout(t0, fast, 1, deadline)), 150);
    assert_eq!(ms(retry::next_encrypted_timeout(t0, fast, deadline)), 1000);
    // A slow one: capped at 2 s; late in the question: at its deadline.
    let slow = Duration::from_millis(1500);
    assert_eq!(ms(retry::next_encrypted_timeout(t0, slow, deadline)), 2000);
    let late = t0 + Duration::from_millis(3500);
    assert_eq!(retry::next_encrypted_timeout(late, new, deadline), deadline);
}

/// Timers of answered questions at the head of the heap go before the loop sleeps.
#[cfg(feature = "tls")]
#[test]
fn the_wait_ends_at_the_first_live_timer() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    // (timer id, live?): the dead ones at 1 and 2 ms would end the wait early.
    let mut heap = std::collections::BinaryHeap::new();
    for (at, id) in [(1, 10u32), (2, 11), (1000, 12), (5, 13), (1500, 14)] {
        heap.push(std::cmp::Reverse((ms(at), id)));
    }
    let dead = |id: &u32| matches!(id, 10 | 11 | 14);
    super::timers::drop_dead_heads(&mut heap, dead);
    assert_eq!(heap.peek(), Some(&std::cmp::Reverse((ms(5), 13))));
    // A live head stops the scan: nothing is dropped.
    super::timers::drop_dead_heads(&mut heap, dead);
    assert_eq!(heap.len(), 3);
    heap.pop();
    heap.pop();
    // The dead timer behind them goes once it is at the head.
    super::timers::drop_dead_heads(&mut heap, dead);
    assert!(heap.is_empty());
}

/// The in-flight index files a slot under its key's hash and hands it out only when the
/// slot confirms the key; two keys with one hash share the entry (the later one's), and
/// the earlier one's removal leaves it alone.
#[test]
fn inflight_index_files_slots_by_keyed_hash() {
    use crate::core::inflight::InflightIndex;
    let mut ix = InflightIndex::default();
    let slots = ["a.test", "b.test", "c.test"];
    let key_of = |slot: usize| slots[slot].as_bytes();
    for (slot, key) in slots.iter().enumerate() {
        ix.insert(ix.hash(key.as_bytes()), slot);
    }
    assert_eq!(ix.len(), 3);
    for key in slots {
        let h = ix.hash(key.as_bytes());
        assert_eq!(
            ix.get(h, |s| key_of(s) == key.as_bytes()).map(key_of),
            Some(key.as_bytes())
        );
    }
    // Not confirmed by the slot: not in flight.
    let h = ix.hash(b"a.test");
    assert_eq!(ix.get(h, |_| false), None);
    assert_eq!(ix.get(ix.hash(b"d.test"), |_| true), None);
    // Two keys, one hash: the later slot takes the entry.
    ix.insert(h, 7);
    assert_eq!(ix.get(h, |s| s == 7), Some(7));
    ix.remove(h, 0);
    assert_eq!(ix.get(h, |s| s == 7), Some(7), "the earlier slot's removal");
    ix.remove(h, 7);
    assert_eq!(ix.get(h, |_| true), None);
    assert_eq!(ix.len(), 2);
    // Keyed: another index (another seed) files the same key under another hash.
    assert_ne!(InflightIndex::default().hash(b"a.test"), ix.hash(b"a.test"));
}

/// A finished question's record, reset for a new question, is the record `new` makes:
/// `reset` writes each field in place (no 700-byte record built and moved), so it
/// repeats `new`'s starting values, and this keeps the two from drifting apart.
#[test]
fn a_reset_record_is_a_new_one() {
    let t0 = Instant::now();
    let (a, mut used) = attempt("www.example.test", true);
    use crate::cache::{Key, KEY_CD, KEY_DO};
    let key = Key::new(b"\x01b\x04test\x00", 28, 1, KEY_DO | KEY_CD);
    let name = crate::wire::NameBuf::from_wire(key.name_wire()).unwrap();
    // Everything a question's life changes.
    used.attempts.push(a);
    used.hold(t0, Duration::from_secs(30));
    used.last_failure = Some(Failure);
    used.max_attempts = 9;
    used.stale_at = Some(t0);
    used.no_0x20 = true;
    let t1 = t0 + Duration::from_secs(5);
    used.reset(42, &key, name.clone(), t1);
    let new: Pending<Via, Failure> = Pending::new(42, &key, name, None, t1);
    assert_eq!(used.gen, new.gen);
    assert_eq!(used.key.as_bytes(), new.key.as_bytes());
    assert_eq!(used.name, new.name);
    assert_eq!((used.qtype, used.qclass), (new.qtype, new.qclass));
    assert_eq!((used.do_bit, used.cd), (new.do_bit, new.cd));
    assert!(used.waiters.is_empty() && used.attempts.is_empty());
    assert!(used.attempts.capacity() > 0, "the list keeps its capacity");
    assert_eq!(used.next_timeout, new.next_timeout);
    assert_eq!(used.deadline, new.deadline);
    assert!(used.last_failure.is_none() && new.last_failure.is_none());
    assert_eq!(used.held, new.held);
    assert_eq!(used.max_attempts, new.max_attempts);
    assert_eq!(used.stale_at, new.stale_at);
    assert_eq!(used.no_0x20, new.no_0x20);
}
