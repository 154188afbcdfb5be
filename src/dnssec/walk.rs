//! The chain of trust as a sans-IO state machine: given a response (bytes) and the
//! trust anchors, [`Walk::step`] says which DNSKEY or DS sub-query it needs, from the
//! anchor down to the zones that signed the answer, [`Walk::answer`] takes the reply,
//! and in the end `step` gives the verdict: secure, insecure (with the proof),
//! bogus (with the reason that maps to an Extended DNS Error) or indeterminate.
//!
//! No I/O and no clock: the time comes in with [`Settings`]. The walk re-runs its
//! descent after each reply from what it has learnt (validated key sets, DS sets and
//! cuts), so every signature is checked once; only the final check of the answer
//! spends crypto on the response itself, and it runs once every zone is known.

use std::collections::BTreeMap;

use super::anchors::{self, Anchor};
use super::names::{is_at_or_below, labels, name_eq, suffix};
use super::response::{self, group, Group, Response, Rr};
use super::{
    prove_denial, verify_dnskey_rrset, verify_rrset, Bogus, Budget, Clock, Denied, Insecure, Proof,
    Question, Rrset, RrsigView, Verdict, DNSKEY,
};
use crate::wire::rtype;

/// DS and DNSKEY sub-queries allowed per client query (dnsmasq 2.90: 40).
pub const MAX_SUBQUERIES: u32 = 40;
/// CNAME and DNAME links followed in one answer.
pub const MAX_CHAIN: usize = 12;

/// Why an answer is insecure: the proof, or the reason it cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No trust anchor at or above the name.
    NoAnchor,
    /// The parent proved there is no DS at a delegation on the way (unsigned child).
    NoDs,
    /// The delegation lies in an NSEC3 opt-out span (RFC 5155 §6).
    OptOut,
    /// Only DNSKEY/RRSIG/DS algorithms dproxy does not implement (RFC 4035 §5.2).
    Algorithm(u8),
    /// Only DS digest types dproxy does not implement.
    Digest(u8),
    /// Only RSASHA1 signatures, and `dnssec_sha1` is off (RFC 9905).
    Sha1,
    /// A denial proof that cannot be checked (NSEC3 iterations, unknown hash).
    Nsec3(Insecure),
    /// An unsigned answer accepted without proof (`dnssec_check_unsigned 0`).
    Unchecked,
}

/// The verdict on a whole response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Secure,
    Insecure(Why),
    Bogus(Bogus),
    /// Not validated: the response or a sub-query failed (SERVFAIL, timeout, an
    /// answer to another question).
    Indeterminate,
}

impl Outcome {
    fn rank(self) -> u8 {
        match self {
            Outcome::Secure => 0,
            Outcome::Insecure(_) => 1,
            Outcome::Indeterminate => 2,
            Outcome::Bogus(_) => 3,
        }
    }

    /// The worse of two verdicts (one bogus RRset makes the answer bogus).
    fn worst(self, o: Outcome) -> Outcome {
        if o.rank() > self.rank() {
            o
        } else {
            self
        }
    }

    /// The Extended DNS Error that fits, if any.
    pub fn ede(self) -> Option<u16> {
        match self {
            Outcome::Secure => None,
            Outcome::Bogus(b) => Some(b.ede()),
            Outcome::Insecure(Why::Algorithm(_)) => Some(1),
            Outcome::Insecure(Why::Digest(_)) => Some(2),
            Outcome::Insecure(Why::Nsec3(i)) => Some(i.ede()),
            Outcome::Insecure(_) => None,
            Outcome::Indeterminate => Some(0),
        }
    }
}

/// What the walk needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask `qtype` (DS or DNSKEY) for `name` (wire form, lowercase) with DO=1, then
    /// hand the reply to [`Walk::answer`].
    Query {
        name: Vec<u8>,
        qtype: u16,
    },
    Done(Outcome),
}

/// The operator's choices and the time.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub clock: Clock,
    /// `dnssec_sha1`: RSASHA1 signatures count as secure.
    pub sha1: bool,
    /// `dnssec_check_unsigned`: an unsigned answer must be proven unsigned.
    pub check_unsigned: bool,
}

/// What the walk knows of a zone's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneKeys {
    /// The validated DNSKEY RDATAs.
    Keys(Vec<Vec<u8>>),
    Insecure(Why),
    Bogus(Bogus),
}

/// What the parent said of a name on the way down.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cut {
    /// A validated DS set: a secure delegation.
    Ds(Vec<Vec<u8>>),
    /// Proven not to be a delegation (or not to exist): the parent's zone goes on.
    Inside,
    Insecure(Why),
    Bogus(Bogus),
}

/// An outstanding sub-query; `zone` is the zone whose keys check a DS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    name: Vec<u8>,
    qtype: u16,
    zone: Vec<u8>,
}

/// Where the descent toward a name ended.
enum Chain {
    /// The deepest zone with validated keys at or above the name.
    Zone(Vec<u8>),
    Insecure(Why),
    Bogus(Bogus),
}

/// One validation of one response.
pub struct Walk {
    resp: Option<Response>,
    anchors: Vec<Anchor>,
    set: Settings,
    budget: Budget,
    keys: BTreeMap<Vec<u8>, ZoneKeys>,
    cuts: BTreeMap<Vec<u8>, Cut>,
    pending: Option<Pending>,
    subqueries: u32,
    done: Option<Outcome>,
}

fn lower(n: &[u8]) -> Vec<u8> {
    n.to_ascii_lowercase()
}

fn rrset<'a>(g: &'a Group) -> Rrset<'a> {
    Rrset {
        owner: g.owner,
        rtype: g.rtype,
        class: g.class,
        ttl: g.ttl,
        rdatas: &g.rdatas,
    }
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

/// The name a DNAME at `owner` with target `target` makes of `name` (RFC 6672).
fn dname_target(name: &[u8], owner: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let keep = labels(name).checked_sub(labels(owner))?;
    if keep == 0 {
        return None;
    }
    let tail = suffix(name, labels(owner))?;
    let mut out = name[..name.len() - tail.len()].to_vec();
    out.extend_from_slice(target);
    (out.len() <= crate::wire::MAX_NAME_LEN).then_some(out)
}

impl Walk {
    /// Starts the validation of `response` (the upstream's reply to a DO=1 query).
    pub fn new(response: &[u8], anchors: Vec<Anchor>, set: Settings) -> Walk {
        let (resp, done) = match response::parse(response) {
            Ok(r) if r.rcode == 0 || r.rcode == 3 => (Some(r), None),
            Ok(_) => (None, Some(Outcome::Indeterminate)),
            Err(_) => (None, Some(Outcome::Bogus(Bogus::Malformed))),
        };
        Walk {
            resp,
            anchors,
            set,
            budget: Budget::per_query(),
            keys: BTreeMap::new(),
            cuts: BTreeMap::new(),
            pending: None,
            subqueries: 0,
            done,
        }
    }

    /// Gives the walk a zone's DNSKEY set validated earlier (the daemon's cache), so
    /// that the descent skips its DS and DNSKEY sub-queries.
    pub fn seed(&mut self, zone: &[u8], keys: Vec<Vec<u8>>) {
        self.keys.insert(lower(zone), ZoneKeys::Keys(keys));
    }

    /// The key sets validated during this walk, for the daemon's cache.
    pub fn learned(&self) -> impl Iterator<Item = (&[u8], &[Vec<u8>])> {
        self.keys.iter().filter_map(|(z, k)| match k {
            ZoneKeys::Keys(k) => Some((z.as_slice(), k.as_slice())),
            _ => None,
        })
    }

    /// The crypto work spent so far.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The sub-queries asked so far.
    pub fn subqueries(&self) -> u32 {
        self.subqueries
    }

    /// The next sub-query, or the verdict.
    pub fn step(&mut self) -> Step {
        if let Some(o) = self.done {
            return Step::Done(o);
        }
        if let Some(p) = &self.pending {
            return Step::Query {
                name: p.name.clone(),
                qtype: p.qtype,
            };
        }
        let Some(resp) = self.resp.take() else {
            return Step::Done(Outcome::Indeterminate);
        };
        let r = self.evaluate(&resp);
        self.resp = Some(resp);
        match r {
            Ok(o) => {
                self.done = Some(o);
                Step::Done(o)
            }
            Err(p) => {
                self.subqueries += 1;
                if self.subqueries > MAX_SUBQUERIES {
                    let o = Outcome::Bogus(Bogus::WorkLimit);
                    self.done = Some(o);
                    return Step::Done(o);
                }
                let step = Step::Query {
                    name: p.name.clone(),
                    qtype: p.qtype,
                };
                self.pending = Some(p);
                step
            }
        }
    }

    /// The reply to the sub-query [`Walk::step`] asked; `None` when it failed
    /// (timeout, SERVFAIL from the upstream): the verdict is then indeterminate.
    pub fn answer(&mut self, msg: Option<&[u8]>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let Some(msg) = msg else {
            self.done = Some(Outcome::Indeterminate);
            return;
        };
        let resp = match response::parse(msg) {
            Ok(r) => r,
            Err(_) => {
                self.record(&p, Bogus::Malformed);
                return;
            }
        };
        if !name_eq(&resp.qname, &p.name)
            || resp.qtype != p.qtype
            || !(resp.rcode == 0 || resp.rcode == 3)
        {
            // Neither NOERROR nor NXDOMAIN, or not our question.
            self.done = Some(Outcome::Indeterminate);
            return;
        }
        if p.qtype == rtype::DS {
            let c = self.ds_reply(&p, &resp);
            self.cuts.insert(p.name, c);
        } else {
            let k = self.dnskey_reply(&p, &resp);
            self.keys.insert(p.name, k);
        }
    }

    fn record(&mut self, p: &Pending, b: Bogus) {
        if p.qtype == rtype::DS {
            self.cuts.insert(p.name.clone(), Cut::Bogus(b));
        } else {
            self.keys.insert(p.name.clone(), ZoneKeys::Bogus(b));
        }
    }

    fn insecure_or(&self, v: Verdict) -> Result<bool, Outcome> {
        match v {
            Verdict::Secure { sha1, .. } if sha1 && !self.set.sha1 => {
                Err(Outcome::Insecure(Why::Sha1))
            }
            Verdict::Secure { wildcard, .. } => Ok(wildcard),
            Verdict::UnsupportedAlgorithm(a) => Err(Outcome::Insecure(Why::Algorithm(a))),
            Verdict::UnsupportedDigest(d) => Err(Outcome::Insecure(Why::Digest(d))),
            Verdict::Bogus(b) => Err(Outcome::Bogus(b)),
        }
    }

    fn dnskey_reply(&mut self, p: &Pending, resp: &Response) -> ZoneKeys {
        let ds: Vec<Vec<u8>> = match self.cuts.get(&p.name) {
            Some(Cut::Ds(d)) => d.clone(),
            _ => anchors::for_zone(&self.anchors, &p.name)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect(),
        };
        let groups = group(&resp.answer);
        let Some(g) = groups
            .iter()
            .find(|g| g.rtype == DNSKEY && g.owner == p.name.as_slice())
        else {
            return ZoneKeys::Bogus(Bogus::DnskeyMissing);
        };
        let v = verify_dnskey_rrset(
            &rrset(g),
            &g.sigs,
            &refs(&ds),
            self.set.clock,
            &mut self.budget,
        );
        match self.insecure_or(v) {
            Ok(_) => ZoneKeys::Keys(g.rdatas.iter().map(|r| r.to_vec()).collect()),
            Err(Outcome::Insecure(w)) => ZoneKeys::Insecure(w),
            Err(Outcome::Bogus(b)) => ZoneKeys::Bogus(b),
            Err(_) => ZoneKeys::Bogus(Bogus::Malformed),
        }
    }

    fn ds_reply(&mut self, p: &Pending, resp: &Response) -> Cut {
        let Some(ZoneKeys::Keys(keys)) = self.keys.get(&p.zone).cloned() else {
            return Cut::Bogus(Bogus::DnskeyMissing);
        };
        let groups = group(&resp.answer);
        if let Some(g) = groups
            .iter()
            .find(|g| g.rtype == rtype::DS && g.owner == p.name.as_slice())
        {
            let v = verify_rrset(
                &rrset(g),
                &g.sigs,
                &p.zone,
                &refs(&keys),
                self.set.clock,
                &mut self.budget,
            );
            return match self.insecure_or(v) {
                Ok(_) => Cut::Ds(g.rdatas.iter().map(|r| r.to_vec()).collect()),
                Err(Outcome::Insecure(w)) => Cut::Insecure(w),
                Err(Outcome::Bogus(b)) => Cut::Bogus(b),
                Err(_) => Cut::Bogus(Bogus::Malformed),
            };
        }
        let q = if resp.rcode == 3 {
            Question::NxDomain { qname: &p.name }
        } else {
            Question::NoData {
                qname: &p.name,
                qtype: rtype::DS,
            }
        };
        match self.deny(&p.zone, &keys, &q, &resp.authority) {
            Proof::Denied(Denied::NoDsAtCut) => Cut::Insecure(Why::NoDs),
            Proof::Denied(Denied::OptOut) => Cut::Insecure(Why::OptOut),
            Proof::Denied(Denied::Proven) => Cut::Inside,
            Proof::Insecure(i) => Cut::Insecure(Why::Nsec3(i)),
            Proof::Bogus(b) => Cut::Bogus(b),
        }
    }

    /// Checks the NSEC/NSEC3 records of `authority` with `zone`'s keys, then the claim.
    fn deny(&mut self, zone: &[u8], keys: &[Vec<u8>], q: &Question, authority: &[Rr]) -> Proof {
        let groups = group(authority);
        let keys = refs(keys);
        let mut nsec: Vec<(&[u8], &[u8])> = Vec::new();
        let mut nsec3: Vec<(&[u8], &[u8])> = Vec::new();
        for g in groups
            .iter()
            .filter(|g| g.rtype == rtype::NSEC || g.rtype == rtype::NSEC3)
        {
            match verify_rrset(
                &rrset(g),
                &g.sigs,
                zone,
                &keys,
                self.set.clock,
                &mut self.budget,
            ) {
                Verdict::Secure { .. } => {
                    let to = if g.rtype == rtype::NSEC {
                        &mut nsec
                    } else {
                        &mut nsec3
                    };
                    to.extend(g.rdatas.iter().map(|r| (g.owner, *r)));
                }
                Verdict::Bogus(b) => return Proof::Bogus(b),
                // Signed only with algorithms the zone's keys do not use: no proof.
                Verdict::UnsupportedAlgorithm(_) | Verdict::UnsupportedDigest(_) => {}
            }
        }
        prove_denial(q, zone, &nsec, &nsec3, &mut self.budget)
    }

    /// The descent from the closest anchor toward `target`; a sub-query when a
    /// link is missing.
    fn chain(&self, target: &[u8]) -> Result<Chain, Pending> {
        let Some(anchor) = self
            .anchors
            .iter()
            .filter(|a| is_at_or_below(target, &a.owner))
            .max_by_key(|a| labels(&a.owner))
        else {
            return Ok(Chain::Insecure(Why::NoAnchor));
        };
        let mut zone = lower(&anchor.owner);
        let mut pos = zone.clone();
        loop {
            match self.keys.get(&zone) {
                Some(ZoneKeys::Keys(_)) => {}
                Some(ZoneKeys::Insecure(w)) => return Ok(Chain::Insecure(*w)),
                Some(ZoneKeys::Bogus(b)) => return Ok(Chain::Bogus(*b)),
                None => {
                    return Err(Pending {
                        name: zone.clone(),
                        qtype: DNSKEY,
                        zone,
                    })
                }
            }
            if name_eq(&pos, target) {
                return Ok(Chain::Zone(zone));
            }
            let Some(c) = suffix(target, labels(&pos) + 1).map(lower) else {
                return Ok(Chain::Bogus(Bogus::Malformed));
            };
            if matches!(self.keys.get(&c), Some(ZoneKeys::Keys(_))) {
                zone = c.clone();
                pos = c;
                continue;
            }
            match self.cuts.get(&c) {
                None => {
                    return Err(Pending {
                        name: c,
                        qtype: rtype::DS,
                        zone,
                    })
                }
                Some(Cut::Ds(_)) => {
                    zone = c.clone();
                    pos = c;
                }
                Some(Cut::Inside) => pos = c,
                Some(Cut::Insecure(w)) => return Ok(Chain::Insecure(*w)),
                Some(Cut::Bogus(b)) => return Ok(Chain::Bogus(*b)),
            }
        }
    }

    /// The keys of zone `signer`, established first for every name the answer
    /// needs (no crypto on the response until every sub-query is answered).
    fn zone_keys(&self, signer: &[u8]) -> Result<Vec<Vec<u8>>, Outcome> {
        match self.chain(signer) {
            Ok(Chain::Zone(z)) if z == signer => match self.keys.get(&z) {
                Some(ZoneKeys::Keys(k)) => Ok(k.clone()),
                _ => Err(Outcome::Bogus(Bogus::DnskeyMissing)),
            },
            // The signer is not a zone with a secure delegation.
            Ok(Chain::Zone(_)) => Err(Outcome::Bogus(Bogus::DnskeyMissing)),
            Ok(Chain::Insecure(w)) => Err(Outcome::Insecure(w)),
            Ok(Chain::Bogus(b)) => Err(Outcome::Bogus(b)),
            Err(_) => Err(Outcome::Indeterminate),
        }
    }

    /// An unsigned RRset or denial at `name`: insecure only if the descent proves it.
    fn unsigned(&self, name: &[u8], missing: Bogus) -> Outcome {
        if !self.set.check_unsigned {
            return Outcome::Insecure(Why::Unchecked);
        }
        match self.chain(name) {
            Ok(Chain::Zone(_)) => Outcome::Bogus(missing),
            Ok(Chain::Insecure(w)) => Outcome::Insecure(w),
            Ok(Chain::Bogus(b)) => Outcome::Bogus(b),
            Err(_) => Outcome::Indeterminate,
        }
    }

    fn evaluate(&mut self, resp: &Response) -> Result<Outcome, Pending> {
        let answer = group(&resp.answer);
        let authority = group(&resp.authority);
        // The chain of owner names from the question to the data (or its absence),
        // with the RRsets that make it; a CNAME synthesised from a DNAME is checked
        // against the DNAME rather than by signature.
        let mut used: Vec<&Group> = Vec::new();
        let mut cur = resp.qname.clone();
        let mut end: Option<Vec<u8>> = Some(cur.clone());
        for _ in 0..MAX_CHAIN {
            if answer
                .iter()
                .any(|g| g.owner == cur.as_slice() && g.rtype == resp.qtype)
            {
                used.extend(
                    answer
                        .iter()
                        .filter(|g| g.owner == cur.as_slice() && g.rtype == resp.qtype),
                );
                end = None;
                break;
            }
            if let Some(g) = answer.iter().find(|g| {
                g.rtype == rtype::DNAME
                    && resp.qtype != rtype::DNAME
                    && is_at_or_below(&cur, g.owner)
                    && g.owner != cur.as_slice()
            }) {
                let Some(next) = g
                    .rdatas
                    .first()
                    .and_then(|t| dname_target(&cur, g.owner, &lower(t)))
                else {
                    return Ok(Outcome::Bogus(Bogus::Malformed));
                };
                used.push(g);
                cur = next;
                end = Some(cur.clone());
                continue;
            }
            if let Some(g) = answer
                .iter()
                .find(|g| g.rtype == rtype::CNAME && g.owner == cur.as_slice())
            {
                let Some(t) = g.rdatas.first() else {
                    return Ok(Outcome::Bogus(Bogus::Malformed));
                };
                if g.rdatas.len() != 1 {
                    return Ok(Outcome::Bogus(Bogus::Malformed));
                }
                if !g.sigs.is_empty()
                    || !used.iter().any(|d| {
                        d.rtype == rtype::DNAME
                            && dname_target(&cur, d.owner, &lower(d.rdatas[0]))
                                .is_some_and(|n| n == lower(t))
                    })
                {
                    used.push(g);
                }
                cur = lower(t);
                end = Some(cur.clone());
                continue;
            }
            break;
        }
        // First pass: the descent for every zone involved (sub-queries, no crypto
        // on the response).
        for g in &used {
            match g.signer() {
                Some(s) => {
                    self.chain(&s)?;
                }
                None if self.set.check_unsigned => {
                    self.chain(g.owner)?;
                }
                None => {}
            }
        }
        let denial_signer = authority
            .iter()
            .find(|g| g.rtype == rtype::SOA)
            .and_then(Group::signer)
            .or_else(|| {
                authority
                    .iter()
                    .filter(|g| g.rtype == rtype::NSEC || g.rtype == rtype::NSEC3)
                    .find_map(Group::signer)
            });
        if let Some(name) = &end {
            match &denial_signer {
                Some(s) => {
                    self.chain(s)?;
                }
                None if self.set.check_unsigned => {
                    self.chain(name)?;
                }
                None => {}
            }
        }
        // Second pass: the signatures and proofs, once.
        let mut out = Outcome::Secure;
        for g in &used {
            out = out.worst(self.check_rrset(g, &resp.authority));
            if matches!(out, Outcome::Bogus(_)) {
                return Ok(out);
            }
        }
        if let Some(name) = end {
            let q = if resp.rcode == 3 {
                Question::NxDomain { qname: &name }
            } else {
                Question::NoData {
                    qname: &name,
                    qtype: resp.qtype,
                }
            };
            let o = match denial_signer {
                Some(s) => self.check_denial(&s, &q, &authority, resp),
                None if authority.iter().any(|g| g.rtype == rtype::SOA) => {
                    self.unsigned(&name, Bogus::RrsigsMissing)
                }
                None => self.unsigned(&name, Bogus::NsecMissing),
            };
            out = out.worst(o);
        }
        Ok(out)
    }

    fn check_rrset(&mut self, g: &Group, authority: &[Rr]) -> Outcome {
        let Some(signer) = g.signer() else {
            return self.unsigned(g.owner, Bogus::RrsigsMissing);
        };
        let keys = match self.zone_keys(&signer) {
            Ok(k) => k,
            Err(o) => return o,
        };
        let v = verify_rrset(
            &rrset(g),
            &g.sigs,
            &signer,
            &refs(&keys),
            self.set.clock,
            &mut self.budget,
        );
        match self.insecure_or(v) {
            Ok(false) => Outcome::Secure,
            Ok(true) => {
                // Expanded from a wildcard: no closer name may exist.
                let owner_labels = labels(g.owner);
                let Some(l) = g
                    .sigs
                    .iter()
                    .filter_map(|s| RrsigView::parse(s).ok())
                    .map(|s| s.labels)
                    .find(|l| (*l as usize) < owner_labels)
                else {
                    return Outcome::Bogus(Bogus::Malformed);
                };
                let q = Question::Wildcard {
                    qname: g.owner,
                    labels: l,
                };
                match self.deny(&signer, &keys, &q, authority) {
                    Proof::Denied(Denied::Proven) => Outcome::Secure,
                    Proof::Denied(_) => Outcome::Insecure(Why::OptOut),
                    Proof::Insecure(i) => Outcome::Insecure(Why::Nsec3(i)),
                    Proof::Bogus(b) => Outcome::Bogus(b),
                }
            }
            Err(o) => o,
        }
    }

    fn check_denial(
        &mut self,
        signer: &[u8],
        q: &Question,
        authority: &[Group],
        resp: &Response,
    ) -> Outcome {
        let keys = match self.zone_keys(signer) {
            Ok(k) => k,
            Err(o) => return o,
        };
        if let Some(soa) = authority.iter().find(|g| g.rtype == rtype::SOA) {
            let v = verify_rrset(
                &rrset(soa),
                &soa.sigs,
                signer,
                &refs(&keys),
                self.set.clock,
                &mut self.budget,
            );
            if let Err(o) = self.insecure_or(v) {
                return o;
            }
        }
        match self.deny(signer, &keys, q, &resp.authority) {
            Proof::Denied(Denied::Proven) => Outcome::Secure,
            Proof::Denied(Denied::NoDsAtCut) if resp.qtype == rtype::DS => Outcome::Secure,
            Proof::Denied(Denied::NoDsAtCut) => Outcome::Bogus(Bogus::NsecMissing),
            Proof::Denied(Denied::OptOut) => Outcome::Insecure(Why::OptOut),
            Proof::Insecure(i) => Outcome::Insecure(Why::Nsec3(i)),
            Proof::Bogus(b) => Outcome::Bogus(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: Settings = Settings {
        clock: Clock {
            now: 1_780_000_000,
            check_inception: true,
        },
        sha1: false,
        check_unsigned: true,
    };

    fn anchors() -> Vec<Anchor> {
        anchors::parse(
            ". IN DS 1 13 2 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF",
        )
        .unwrap()
    }

    /// A response to www.ex. A with `rcode` and one unsigned A record.
    fn response(rcode: u8) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80 | rcode, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x02ex\0\0\x01\0\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        m
    }

    #[test]
    fn malformed_and_failed_responses() {
        let mut w = Walk::new(&[1, 2, 3], anchors(), SET);
        assert_eq!(w.step(), Step::Done(Outcome::Bogus(Bogus::Malformed)));
        let mut w = Walk::new(&response(2), anchors(), SET);
        assert_eq!(w.step(), Step::Done(Outcome::Indeterminate));
    }

    #[test]
    fn descends_from_the_anchor_and_stops_on_a_failed_subquery() {
        let mut w = Walk::new(&response(0), anchors(), SET);
        let root = Step::Query {
            name: vec![0],
            qtype: DNSKEY,
        };
        assert_eq!(w.step(), root);
        // Asked again until answered.
        assert_eq!(w.step(), root);
        w.answer(None);
        assert_eq!(w.step(), Step::Done(Outcome::Indeterminate));
        assert_eq!(w.subqueries(), 1);
    }

    #[test]
    fn answer_to_another_question_is_not_taken() {
        let mut w = Walk::new(&response(0), anchors(), SET);
        assert!(matches!(w.step(), Step::Query { .. }));
        w.answer(Some(&response(0)));
        assert_eq!(w.step(), Step::Done(Outcome::Indeterminate));
    }

    #[test]
    fn broken_subanswer_is_bogus_and_unanchored_name_insecure() {
        let mut w = Walk::new(&response(0), anchors(), SET);
        assert!(matches!(w.step(), Step::Query { .. }));
        w.answer(Some(&[0; 5]));
        assert_eq!(w.step(), Step::Done(Outcome::Bogus(Bogus::Malformed)));
        let other = anchors::parse(
            "zz. IN DS 1 13 2 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF",
        )
        .unwrap();
        let mut w = Walk::new(&response(0), other, SET);
        assert_eq!(w.step(), Step::Done(Outcome::Insecure(Why::NoAnchor)));
        let unchecked = Settings {
            check_unsigned: false,
            ..SET
        };
        let mut w = Walk::new(&response(0), anchors(), unchecked);
        assert_eq!(w.step(), Step::Done(Outcome::Insecure(Why::Unchecked)));
    }

    #[test]
    fn subqueries_are_capped() {
        // With the count at the cap, one more sub-query is refused: bogus.
        let mut w = Walk::new(&response(0), anchors(), SET);
        w.subqueries = MAX_SUBQUERIES;
        assert_eq!(w.step(), Step::Done(Outcome::Bogus(Bogus::WorkLimit)));
    }

    #[test]
    fn dname_synthesis() {
        assert_eq!(
            dname_target(b"\x01a\x01b\x02ex\0", b"\x01b\x02ex\0", b"\x01c\0"),
            Some(b"\x01a\x01c\0".to_vec())
        );
        assert_eq!(dname_target(b"\x02ex\0", b"\x02ex\0", b"\x01c\0"), None);
    }
}
