//! Unit tests for the local-names module: every file format from real files in a temp dir.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::leases::{self, Format};
use super::table::NEVER;
use super::*;

// ---------------------------------------------------------------------------
// helpers

use crate::test_dir::TempDir;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("v4 literal")
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("v6 literal")
}
fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

const NOW: u64 = 1_790_000_000; // 2026-09, before the sample expiries

fn cfg(hosts: Vec<PathBuf>, leasefiles: Vec<PathBuf>, domain: Option<&str>) -> LocalConfig {
    LocalConfig {
        hosts,
        leasefiles,
        domain: domain.map(str::to_string),
    }
}

fn loaded(hosts: Vec<PathBuf>, leasefiles: Vec<PathBuf>, domain: Option<&str>) -> LocalNames {
    let mut ln = LocalNames::new(cfg(hosts, leasefiles, domain));
    ln.reload_all(NOW);
    ln
}

fn a4(ln: &LocalNames, name: &str, now: u64) -> Vec<Ipv4Addr> {
    ln.lookup_name(name.as_bytes(), now)
        .map(|a| a.v4.to_vec())
        .unwrap_or_default()
}
fn a6(ln: &LocalNames, name: &str, now: u64) -> Vec<Ipv6Addr> {
    ln.lookup_name(name.as_bytes(), now)
        .map(|a| a.v6.to_vec())
        .unwrap_or_default()
}
fn ptr(ln: &LocalNames, addr: &str, now: u64) -> Option<String> {
    ln.lookup_addr(ip(addr), now)
        .map(|n| String::from_utf8_lossy(&n).into_owned())
}

// ---------------------------------------------------------------------------
// hosts files

const HOSTS: &[u8] = b"\
# /etc/hosts
127.0.0.1\tlocalhost
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes

192.168.1.5   NAS nas.home   storage   # the file server
192.168.1.6\t\tprinter\t# tabs
\t  192.168.1.7 indented
192.168.1.8 router.  # trailing dot dropped
2001:db8::5 nas
192.168.1.9 nas
192.168.1.5 nas
";

#[test]
fn hosts_basic_syntax() {
    let d = TempDir::new("localnames-hosts");
    let h = d.write("hosts", HOSTS);
    let ln = loaded(vec![h], vec![], None);
    assert_eq!(a4(&ln, "localhost", NOW), vec![v4("127.0.0.1")]);
    assert_eq!(a6(&ln, "localhost", NOW), vec![v6("::1")]);
    assert_eq!(a6(&ln, "ip6-loopback", NOW), vec![v6("::1")]);
    // Duplicates merged, deduplicated, file order kept; names lowercased.
    assert_eq!(
        a4(&ln, "nas", NOW),
        vec![v4("192.168.1.5"), v4("192.168.1.9")]
    );
    assert_eq!(a6(&ln, "nas", NOW), vec![v6("2001:db8::5")]);
    assert_eq!(a4(&ln, "storage", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(a4(&ln, "nas.home", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(a4(&ln, "printer", NOW), vec![v4("192.168.1.6")]);
    assert_eq!(a4(&ln, "indented", NOW), vec![v4("192.168.1.7")]);
    assert_eq!(a4(&ln, "router", NOW), vec![v4("192.168.1.8")]);
    // A name with only one family: the other slice is empty (NODATA).
    let p = ln.lookup_name(b"printer", NOW).expect("printer");
    assert!(p.v6.is_empty());
    // Trailing dot on the query is tolerated.
    assert_eq!(ln.lookup_name(b"printer.", NOW), Some(p));
    // Comments are not names.
    assert!(ln.lookup_name(b"the", NOW).is_none());
    assert!(ln.lookup_name(b"tabs", NOW).is_none());
    assert!(ln.lookup_name(b"unknown", NOW).is_none());
    // PTR: canonical (first) name of the first line for the address.
    assert_eq!(ptr(&ln, "192.168.1.5", NOW).as_deref(), Some("nas"));
    assert_eq!(ptr(&ln, "::1", NOW).as_deref(), Some("localhost"));
    assert_eq!(ptr(&ln, "2001:db8::5", NOW).as_deref(), Some("nas"));
    assert_eq!(ptr(&ln, "192.168.1.99", NOW), None);
    // Not aliases: "storage" is never a PTR answer for .5.
    assert_eq!(ln.len(), 10);
    assert!(!ln.is_empty());
}

#[test]
fn hosts_crlf_and_missing_final_newline() {
    let d = TempDir::new("localnames-crlf");
    let h = d.write(
        "hosts",
        b"10.0.0.1 alpha beta\r\n# comment\r\n\r\n10.0.0.2\tgamma\r\n10.0.0.3 delta",
    );
    let ln = loaded(vec![h], vec![], None);
    assert_eq!(a4(&ln, "alpha", NOW), vec![v4("10.0.0.1")]);
    assert_eq!(a4(&ln, "beta", NOW), vec![v4("10.0.0.1")]);
    assert_eq!(a4(&ln, "gamma", NOW), vec![v4("10.0.0.2")]);
    assert_eq!(a4(&ln, "delta", NOW), vec![v4("10.0.0.3")]);
    assert_eq!(ln.len(), 4);
}

#[test]
fn hosts_malformed_lines_skipped() {
    let data: &[u8] = b"\
10.0.0.1 good
10.0.0.300 badaddr
fe80::1%eth0 zoned
10.0.0.2
not-an-address name
10.0.0.3 ok bad..name also-ok
10.0.0.4 under_score -hy-phen
10.0.0.5 \xff\xfe invalid-utf8-first
10.0.0.6 nul\x00byte
10.0.0.7/24 cidr
10.0.0.8 toolonglabel-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
10.0.0.9 last";
    let p = super::hosts::parse(data, Path::new("t"));
    // bad address, zone, no names, not-an-address, cidr, one bad name on 3 lines, long label
    assert_eq!(p.bad, 9);
    let d = TempDir::new("localnames-malformed");
    let h = d.write("hosts", data);
    let ln = loaded(vec![h], vec![], None);
    assert_eq!(a4(&ln, "good", NOW), vec![v4("10.0.0.1")]);
    assert_eq!(a4(&ln, "ok", NOW), vec![v4("10.0.0.3")]);
    assert_eq!(a4(&ln, "also-ok", NOW), vec![v4("10.0.0.3")]);
    assert_eq!(a4(&ln, "under_score", NOW), vec![v4("10.0.0.4")]);
    assert_eq!(a4(&ln, "-hy-phen", NOW), vec![v4("10.0.0.4")]);
    assert_eq!(a4(&ln, "invalid-utf8-first", NOW), vec![v4("10.0.0.5")]);
    // The first *valid* name is canonical.
    assert_eq!(
        ptr(&ln, "10.0.0.5", NOW).as_deref(),
        Some("invalid-utf8-first")
    );
    assert_eq!(a4(&ln, "last", NOW), vec![v4("10.0.0.9")]);
    assert!(ln.lookup_name(b"zoned", NOW).is_none());
    assert!(ln.lookup_name(b"badaddr", NOW).is_none());
    assert!(ln.lookup_name(b"name", NOW).is_none());
    assert!(ln.lookup_name(b"cidr", NOW).is_none());
    assert_eq!(ln.len(), 7);
}

#[test]
fn hosts_many_bad_lines_counted_not_fatal() {
    let mut data = Vec::new();
    for i in 0..5000 {
        data.extend_from_slice(format!("garbage line {i}\n").as_bytes());
    }
    data.extend_from_slice(b"10.1.1.1 fine\n");
    let p = super::hosts::parse(&data, Path::new("big-broken"));
    assert_eq!(p.bad, 5000);
    assert_eq!(p.len(), 1);
}

#[test]
fn names_validation_limits() {
    let l63 = "a".repeat(63);
    let l64 = "a".repeat(64);
    let long_ok = [l63.as_str(), l63.as_str(), l63.as_str(), &"b".repeat(61)].join("."); // 253
    let long_bad = format!("{long_ok}b"); // 254
    assert_eq!(long_ok.len(), 253);
    let text = format!("10.0.0.1 {l63} {l64} {long_ok} {long_bad} a..b .lead\n");
    let p = super::hosts::parse(text.as_bytes(), Path::new("t"));
    let names: Vec<&[u8]> = p.iter().map(|(_, n)| n).collect();
    assert_eq!(names, vec![l63.as_bytes(), long_ok.as_bytes()]);
}

#[test]
fn hosts_directory_sorted_dotfiles_skipped() {
    let d = TempDir::new("localnames-dir");
    let dir = d.path("hosts.d");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("b-second"), b"10.0.0.2 shared two\n").expect("w");
    fs::write(dir.join("a-first"), b"10.0.0.1 shared one\n").expect("w");
    fs::write(dir.join(".hidden"), b"10.0.0.3 hidden\n").expect("w");
    fs::create_dir(dir.join("subdir")).expect("mkdir");
    fs::write(dir.join("subdir").join("x"), b"10.0.0.4 nested\n").expect("w");
    let ln = loaded(vec![dir.clone()], vec![], None);
    assert_eq!(a4(&ln, "shared", NOW), vec![v4("10.0.0.1"), v4("10.0.0.2")]);
    assert_eq!(a4(&ln, "one", NOW), vec![v4("10.0.0.1")]);
    assert_eq!(a4(&ln, "two", NOW), vec![v4("10.0.0.2")]);
    assert!(ln.lookup_name(b"hidden", NOW).is_none());
    assert!(ln.lookup_name(b"nested", NOW).is_none());
    assert_eq!(ptr(&ln, "10.0.0.1", NOW).as_deref(), Some("shared"));

    // A file added to the directory (odhcpd style: dotfile then rename) is picked up.
    let mut ln = ln;
    assert!(!ln.poll(NOW));
    fs::write(dir.join(".odhcpd"), b"10.0.0.9 newhost\n").expect("w");
    fs::rename(dir.join(".odhcpd"), dir.join("odhcpd")).expect("rename");
    assert!(ln.poll(NOW + 1));
    assert_eq!(a4(&ln, "newhost", NOW + 1), vec![v4("10.0.0.9")]);
    // ... and a removed one dropped.
    fs::remove_file(dir.join("a-first")).expect("rm");
    assert!(ln.poll(NOW + 2));
    assert!(ln.lookup_name(b"one", NOW + 2).is_none());
    assert_eq!(a4(&ln, "shared", NOW + 2), vec![v4("10.0.0.2")]);
}

#[test]
fn domain_qualifies_bare_names() {
    let d = TempDir::new("localnames-domain");
    let h = d.write(
        "hosts",
        b"192.168.1.5 nas\n192.168.1.6 www.example.org\n192.168.1.7 pc.lan pc\n",
    );
    let ln = loaded(vec![h], vec![], Some(".LAN."));
    assert_eq!(ln.domain(), Some(&b"lan"[..]));
    assert_eq!(a4(&ln, "nas", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(a4(&ln, "nas.lan", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(ptr(&ln, "192.168.1.5", NOW).as_deref(), Some("nas.lan"));
    // Dotted names are not qualified.
    assert_eq!(a4(&ln, "www.example.org", NOW), vec![v4("192.168.1.6")]);
    assert!(ln.lookup_name(b"www.example.org.lan", NOW).is_none());
    assert_eq!(
        ptr(&ln, "192.168.1.6", NOW).as_deref(),
        Some("www.example.org")
    );
    // Explicit pc.lan and bare pc merge into one answer.
    assert_eq!(a4(&ln, "pc.lan", NOW), vec![v4("192.168.1.7")]);
    assert_eq!(a4(&ln, "pc", NOW), vec![v4("192.168.1.7")]);
    assert_eq!(ptr(&ln, "192.168.1.7", NOW).as_deref(), Some("pc.lan"));
    // Local zones.
    assert!(ln.is_local_zone(b"lan"));
    assert!(ln.is_local_zone(b"x.lan"));
    assert!(ln.is_local_zone(b"printer.home.arpa"));
    assert!(ln.is_local_zone(b"home.arpa."));
    assert!(!ln.is_local_zone(b"plan"));
    assert!(!ln.is_local_zone(b"example.org"));

    let bad = LocalNames::new(cfg(vec![], vec![], Some("bad domain")));
    assert_eq!(bad.domain(), None);
    assert!(!bad.is_local_zone(b"x.lan"));
    assert!(bad.is_local_zone(b"home.arpa"));
}

// ---------------------------------------------------------------------------
// lease files

const DNSMASQ: &[u8] = b"\
1795687200 00:11:22:33:44:55 192.168.1.20 Laptop 01:00:11:22:33:44:55
0 00:11:22:33:44:56 192.168.1.21 static-box *
1000 aa:bb:cc:dd:ee:ff 192.168.1.22 expired 01:aa:bb:cc:dd:ee:ff
1795687200 00:11:22:33:44:57 192.168.1.23 * 01:00:11:22:33:44:57
1795687200 00:11:22:33:44:58 192.168.1.24 phone.corp.example *
garbage
1795687200 00:11:22:33:44:59 192.168.1.300 badip *
duid 00:01:00:01:2c:aa:bb:cc:00:11:22:33:44:55
1795687200 1234567 2001:db8::20 laptop 00:01:00:01:2c:aa:bb:cc:00:11:22:33:44:55
1795687300 T99 fd00::21 tablet 00:01:00:01:aa
";

#[test]
fn dnsmasq_leases() {
    assert_eq!(leases::detect(DNSMASQ), Format::Dnsmasq);
    let d = TempDir::new("localnames-dnsmasq");
    let l = d.write("dhcp.leases", DNSMASQ);
    let ln = loaded(vec![], vec![l], None);
    assert_eq!(a4(&ln, "laptop", NOW), vec![v4("192.168.1.20")]);
    assert_eq!(a6(&ln, "laptop", NOW), vec![v6("2001:db8::20")]);
    assert_eq!(a4(&ln, "static-box", NOW), vec![v4("192.168.1.21")]);
    assert!(ln.lookup_name(b"expired", NOW).is_none());
    assert_eq!(a4(&ln, "phone", NOW), vec![v4("192.168.1.24")]);
    assert!(ln.lookup_name(b"phone.corp.example", NOW).is_none());
    assert_eq!(a6(&ln, "tablet", NOW), vec![v6("fd00::21")]);
    assert_eq!(ptr(&ln, "192.168.1.20", NOW).as_deref(), Some("laptop"));
    assert_eq!(ptr(&ln, "192.168.1.23", NOW), None);
    assert_eq!(ptr(&ln, "fd00::21", NOW).as_deref(), Some("tablet"));
    // Infinite lease (expiry 0) never expires; the others do.
    let later = 1_900_000_000;
    assert_eq!(a4(&ln, "static-box", later), vec![v4("192.168.1.21")]);
    assert!(ln.lookup_name(b"laptop", later).is_none());
    assert_eq!(ptr(&ln, "192.168.1.20", later), None);
    assert_eq!(ln.next_expiry(), Some(1_795_687_200));
}

#[test]
fn lease_expires_during_run() {
    let d = TempDir::new("localnames-expire");
    let t = NOW + 100;
    let l = d.write(
        "dhcp.leases",
        format!("{t} 00:11:22:33:44:55 192.168.1.20 shortlived *\n{} 00:11:22:33:44:56 192.168.1.20 other *\n", t + 50)
            .as_bytes(),
    );
    let h = d.write("hosts", b"192.168.1.20 fixed\n");
    let mut ln = loaded(vec![], vec![l.clone()], Some("lan"));
    assert_eq!(a4(&ln, "shortlived", NOW), vec![v4("192.168.1.20")]);
    assert_eq!(a4(&ln, "shortlived.lan", NOW), vec![v4("192.168.1.20")]);
    assert_eq!(
        ptr(&ln, "192.168.1.20", NOW).as_deref(),
        Some("shortlived.lan")
    );
    assert!(!ln.poll(t - 1));
    // Past expiry, without any reload: gone; the PTR moves to the next name.
    assert!(ln.lookup_name(b"shortlived", t).is_none());
    assert!(ln.lookup_name(b"shortlived.lan", t).is_none());
    assert_eq!(ptr(&ln, "192.168.1.20", t).as_deref(), Some("other.lan"));
    // poll notices the expiry and drops it from the table.
    let before = ln.len();
    assert!(ln.poll(t));
    assert_eq!(ln.len(), before - 2);
    assert!(!ln.poll(t + 1));
    assert!(ln.poll(t + 50));
    assert!(ln.is_empty());
    assert_eq!(ln.next_expiry(), None);

    // A hosts entry for the same address wins the PTR and never expires.
    let mut ln = LocalNames::new(cfg(vec![h], vec![l], None));
    assert!(ln.poll(NOW));
    assert_eq!(ptr(&ln, "192.168.1.20", NOW).as_deref(), Some("fixed"));
    assert_eq!(ptr(&ln, "192.168.1.20", t + 1000).as_deref(), Some("fixed"));
}

#[test]
fn hosts_layer_wins_over_leases() {
    let d = TempDir::new("localnames-layers");
    let h = d.write("hosts", b"192.168.1.5 nas\n");
    let l = d.write(
        "dhcp.leases",
        b"0 aa 192.168.1.50 nas *\n0 bb 192.168.1.51 laptop *\n0 cc 192.168.1.5 imposter *\n",
    );
    let mut ln = loaded(vec![h.clone()], vec![l.clone()], Some("lan"));
    // The hosts file owns "nas" (and "nas.lan"): the lease's address is not added.
    assert_eq!(a4(&ln, "nas", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(a4(&ln, "nas.lan", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(a4(&ln, "laptop.lan", NOW), vec![v4("192.168.1.51")]);
    assert_eq!(a4(&ln, "imposter", NOW), vec![v4("192.168.1.5")]);
    assert_eq!(ptr(&ln, "192.168.1.5", NOW).as_deref(), Some("nas.lan"));
    assert_eq!(ptr(&ln, "192.168.1.50", NOW), None);
    assert_eq!(ptr(&ln, "192.168.1.51", NOW).as_deref(), Some("laptop.lan"));
    assert_eq!(ln.len(), 2 + 6);
    // Removing the hosts entry lets the lease answer.
    fs::write(&h, b"# empty\n").expect("w");
    assert!(ln.poll(NOW));
    assert_eq!(a4(&ln, "nas", NOW), vec![v4("192.168.1.50")]);
    assert_eq!(
        ptr(&ln, "192.168.1.5", NOW).as_deref(),
        Some("imposter.lan")
    );
    // A lease-file change leaves the hosts layer alone (and vice versa).
    fs::write(&l, b"0 aa 192.168.1.52 nas *\n").expect("w");
    assert!(ln.poll(NOW));
    assert_eq!(a4(&ln, "nas", NOW), vec![v4("192.168.1.52")]);
    assert!(ln.lookup_name(b"laptop", NOW).is_none());
}

#[test]
fn same_name_mixed_expiry_prefix() {
    // One name, addresses with different expiries: only live ones returned.
    let d = TempDir::new("localnames-mixed");
    let l = d.write(
        "leases",
        format!(
            "{} m 10.0.0.1 multi *\n0 m 10.0.0.2 multi *\n{} m 10.0.0.3 multi *\n{} m 10.0.0.1 multi *\n",
            NOW + 10,
            NOW + 20,
            NOW + 5
        )
        .as_bytes(),
    );
    let ln = loaded(vec![], vec![l], None);
    let mut got = a4(&ln, "multi", NOW);
    got.sort();
    assert_eq!(got, vec![v4("10.0.0.1"), v4("10.0.0.2"), v4("10.0.0.3")]);
    let mut got = a4(&ln, "multi", NOW + 10);
    got.sort();
    assert_eq!(got, vec![v4("10.0.0.2"), v4("10.0.0.3")]);
    assert_eq!(a4(&ln, "multi", NOW + 20), vec![v4("10.0.0.2")]);
}

const ODHCPD_STATE: &[u8] = b"\
192.168.1.30\tphone.lan\tphone
# br-lan 001122334455 ipv4 phone 1795687200 1e 32 192.168.1.30/32
fd00::30\tphone.lan\tphone
2001:db8:1::30\tphone.lan\tphone
# br-lan 000100012caabbcc001122334455 5a3b1c2d phone 1795687200 30 128 fd00::30/128 2001:db8:1::30/128
# br-lan 000100012caabbcc001122334466 5a3b1c2e - -1 0 56 2001:db8:2::/56
192.168.1.31\told.lan\told
# br-lan 001122334466 ipv4 old 0 1f 32 192.168.1.31/32
# br-lan 001122334477 ipv4 - 1795687200 20 32 192.168.1.32/32
192.168.1.33\tforever.lan\tforever
# br-lan 001122334488 ipv4 forever -1 21 32 192.168.1.33/32
";

#[test]
fn odhcpd_state_and_hosts_files() {
    assert_eq!(leases::detect(ODHCPD_STATE), Format::Hosts);
    assert_eq!(
        leases::detect(b"# just a comment\n\n192.168.1.1\ta.lan\ta\n"),
        Format::Hosts
    );
    let d = TempDir::new("localnames-odhcpd");
    let state = d.write("odhcpd.leases", ODHCPD_STATE);
    let hostsfile = d.write(
        "odhcpd",
        b"192.168.1.40\tcam.lan\tcam\nfd00::40\tcam.lan\tcam\n",
    );
    let ln = loaded(vec![], vec![state.clone(), hostsfile.clone()], None);
    assert_eq!(a4(&ln, "phone", NOW), vec![v4("192.168.1.30")]);
    assert_eq!(a4(&ln, "phone.lan", NOW), vec![v4("192.168.1.30")]);
    assert_eq!(
        a6(&ln, "phone", NOW),
        vec![v6("fd00::30"), v6("2001:db8:1::30")]
    );
    assert_eq!(ptr(&ln, "fd00::30", NOW).as_deref(), Some("phone.lan"));
    assert!(ln.lookup_name(b"old", NOW).is_none());
    assert_eq!(a4(&ln, "forever", 4_000_000_000), vec![v4("192.168.1.33")]);
    assert_eq!(a4(&ln, "cam", NOW), vec![v4("192.168.1.40")]);
    assert_eq!(a6(&ln, "cam.lan", NOW), vec![v6("fd00::40")]);
    // State-line expiry applies.
    assert!(ln.lookup_name(b"phone", 1_795_687_200).is_none());
    assert_eq!(a4(&ln, "cam", 1_795_687_200), vec![v4("192.168.1.40")]);

    // The same state file read as a hosts file (e.g. /tmp/hosts/odhcpd) works too.
    let ln = loaded(vec![state], vec![], None);
    assert_eq!(a4(&ln, "phone", NOW), vec![v4("192.168.1.30")]);
    assert!(ln.lookup_name(b"old", NOW).is_none());
}

fn isc_sample() -> Vec<u8> {
    br#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001-\023\2767\010\000'\323\242\311";

lease 192.168.1.10 {
  starts 3 2026/11/25 10:00:00;
  ends 4 2026/11/26 10:00:00;
  cltt 3 2026/11/25 10:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:11:22:33:44:55;
  uid "\001\000\021\"3DU{;}";
  set vendor-class-identifier = "MSFT 5.0";
  client-hostname "NAS";
}
lease 192.168.1.11 {
  starts 3 2026/11/25 10:00:00;
  ends never;
  binding state active;
  client-hostname "printer";
}
lease 192.168.1.12 { ends epoch 1795687200; # Thu Nov 26 10:00:00 2026
  binding state active; client-hostname "tv.example.com"; }
lease 192.168.1.13 {
  ends 4 2026/11/26 10:00:00;
  binding state free;
  client-hostname "gone";
}
lease 192.168.1.14 {
  ends 4 2026/11/26 10:00:00;
  binding state active;
  on expiry { set x = "}"; }
  hostname "box";
}
ia-na "\001\002\003\004\000\001\000\001" {
  cltt 3 2026/11/25 10:00:00;
  iaaddr 2001:db8::5 {
    binding state active;
    ends never;
  }
}
host static1 { dynamic; hardware ethernet 00:11:22:33:44:66; fixed-address 192.168.1.50; }
lease 300.1.1.1 { binding state active; client-hostname "badaddr"; }
lease 192.168.1.15 { binding state active; ends 4 2026/13/40 99:00:00; client-hostname "badtime"; }
lease 192.168.1.16 {
  ends 4 2020/01/01 00:00:00;
  binding state active;
  client-hostname "stale";
}
lease 192.168.1.17 { binding state active; client-hostname "replaced"; }
lease 192.168.1.10 {
  starts 4 2026/11/26 09:00:00;
  ends 4 2026/11/26 11:00:00;
  binding state active;
  client-hostname "nas2";
}
lease 192.168.1.17 { binding state free; }
lease 192.168.1.18 {
  binding state active; client-hostname "truncated";
"#
    .to_vec()
}

#[test]
fn isc_dhcpd_leases() {
    let data = isc_sample();
    assert_eq!(leases::detect(&data), Format::Isc);
    let p = leases::parse_isc(&data, Path::new("dhcpd.leases"));
    assert_eq!(p.bad, 2); // bad address, bad time
    let d = TempDir::new("localnames-isc");
    let l = d.write("dhcpd.leases", &data);
    let ln = loaded(vec![], vec![l], Some("lan"));
    // Later block for .10 replaced the earlier one.
    assert!(ln.lookup_name(b"nas", NOW).is_none());
    assert_eq!(a4(&ln, "nas2", NOW), vec![v4("192.168.1.10")]);
    assert_eq!(ptr(&ln, "192.168.1.10", NOW).as_deref(), Some("nas2.lan"));
    assert!(ln.lookup_name(b"nas2", 1_795_690_800).is_none()); // ends 11:00 UTC
    assert_eq!(a4(&ln, "nas2", 1_795_690_799), vec![v4("192.168.1.10")]);
    assert_eq!(a4(&ln, "printer", 4_000_000_000), vec![v4("192.168.1.11")]);
    assert_eq!(a4(&ln, "tv.lan", NOW), vec![v4("192.168.1.12")]);
    assert!(ln.lookup_name(b"tv", 1_795_687_200).is_none());
    assert!(ln.lookup_name(b"gone", NOW).is_none());
    assert_eq!(a4(&ln, "box", NOW), vec![v4("192.168.1.14")]);
    assert!(ln.lookup_name(b"badaddr", NOW).is_none());
    assert!(ln.lookup_name(b"badtime", NOW).is_none());
    assert!(ln.lookup_name(b"stale", NOW).is_none());
    assert!(ln.lookup_name(b"replaced", NOW).is_none());
    assert!(ln.lookup_name(b"truncated", NOW).is_none());
    // An unterminated string swallows the rest of the file without harm.
    let p = leases::parse_isc(
        b"lease 10.0.0.1 { binding state active; client-hostname \"x\"; }\nlease 10.0.0.2 { client-hostname \"open;}\n",
        Path::new("t"),
    );
    assert_eq!(p.len(), 1);
    assert!(ln.lookup_addr(ip("2001:db8::5"), NOW).is_none());
    assert!(ln.lookup_addr(ip("192.168.1.50"), NOW).is_none());
}

#[test]
fn isc_time_conversion() {
    use super::leases::parse_utc;
    assert_eq!(parse_utc(b"2026/11/26", b"10:00:00"), Some(1_795_687_200));
    assert_eq!(parse_utc(b"2000/02/29", b"23:59:59"), Some(951_868_799));
    assert_eq!(parse_utc(b"1970/01/01", b"00:00:00"), Some(0));
    assert_eq!(parse_utc(b"2038/01/19", b"03:14:08"), Some(2_147_483_648));
    assert_eq!(parse_utc(b"2100/03/01", b"00:00:00"), Some(4_107_542_400));
    assert_eq!(parse_utc(b"1969/12/31", b"23:59:59"), Some(0));
    assert_eq!(parse_utc(b"2026/11/26", b"10:00"), None);
    assert_eq!(parse_utc(b"2026-11-26", b"10:00:00"), None);
    assert_eq!(parse_utc(b"2026/00/26", b"10:00:00"), None);
    assert_eq!(parse_utc(b"2026/11/26", b"24:00:00"), None);
}

#[test]
fn lease_format_detection() {
    assert_eq!(leases::detect(b""), Format::Hosts);
    assert_eq!(leases::detect(b"\n# x\n"), Format::Hosts);
    assert_eq!(leases::detect(b"duid 00:01\n"), Format::Dnsmasq);
    assert_eq!(
        leases::detect(b"\r\n  0 aa 1.2.3.4 x *\r\n"),
        Format::Dnsmasq
    );
    assert_eq!(
        leases::detect(b"# header\nlease 1.2.3.4 {\n}\n"),
        Format::Isc
    );
    assert_eq!(leases::detect(b"lease 1.2.3.4{ }"), Format::Isc);
    assert_eq!(leases::detect(b"192.168.1.1 a.lan a\n"), Format::Hosts);
}

#[test]
fn windows_line_endings_and_tabs_in_leases() {
    let d = TempDir::new("localnames-crlf-leases");
    let dn = d.write(
        "dnsmasq",
        b"0\t00:11:22:33:44:55\t10.0.0.1\tcrlf-host\t*\r\n0 aa 10.0.0.2 nonl *",
    );
    let isc = d.write(
        "isc",
        b"lease 10.0.0.3 {\r\n\tends never;\r\n\tbinding state active;\r\n\tclient-hostname \"isc-crlf\";\r\n}",
    );
    let ln = loaded(vec![], vec![dn, isc], None);
    assert_eq!(a4(&ln, "crlf-host", NOW), vec![v4("10.0.0.1")]);
    assert_eq!(a4(&ln, "nonl", NOW), vec![v4("10.0.0.2")]);
    assert_eq!(a4(&ln, "isc-crlf", NOW), vec![v4("10.0.0.3")]);
}

// ---------------------------------------------------------------------------
// reloading

#[test]
fn rename_into_place_picked_up_by_poll() {
    let d = TempDir::new("localnames-rename");
    let l = d.replace("dhcp.leases", b"0 aa 192.168.1.20 first *\n");
    let h = d.write("hosts", b"10.9.9.9 keep\n");
    let mut ln = LocalNames::new(cfg(vec![h], vec![l], None));
    assert!(ln.is_empty());
    assert!(ln.poll(NOW));
    assert_eq!(a4(&ln, "first", NOW), vec![v4("192.168.1.20")]);
    assert!(!ln.poll(NOW));
    // Same size, new inode.
    d.replace("dhcp.leases", b"0 aa 192.168.1.21 first *\n");
    assert!(ln.poll(NOW + 1));
    assert_eq!(a4(&ln, "first", NOW + 1), vec![v4("192.168.1.21")]);
    d.replace("dhcp.leases", b"0 aa 192.168.1.22 second *\n");
    assert!(ln.poll(NOW + 2));
    assert!(ln.lookup_name(b"first", NOW + 2).is_none());
    assert_eq!(a4(&ln, "second", NOW + 2), vec![v4("192.168.1.22")]);
    assert_eq!(a4(&ln, "keep", NOW + 2), vec![v4("10.9.9.9")]);
    // Rewritten with identical content: no table change reported.
    d.replace("dhcp.leases", b"0 aa 192.168.1.22 second *\n");
    assert!(!ln.poll(NOW + 3));
}

#[test]
fn in_place_rewrite_picked_up() {
    let d = TempDir::new("localnames-inplace");
    let h = d.write("hosts", b"10.0.0.1 a\n");
    let mut ln = loaded(vec![h.clone()], vec![], None);
    fs::write(&h, b"10.0.0.1 a\n10.0.0.2 b\n").expect("w");
    assert!(ln.poll(NOW));
    assert_eq!(a4(&ln, "b", NOW), vec![v4("10.0.0.2")]);
    // Same size rewrite right away: caught by the recent-mtime re-check.
    fs::write(&h, b"10.0.0.1 a\n10.0.0.3 b\n").expect("w");
    assert!(ln.poll(NOW));
    assert_eq!(a4(&ln, "b", NOW), vec![v4("10.0.0.3")]);
}

#[test]
fn missing_then_appearing_then_gone() {
    let d = TempDir::new("localnames-missing");
    let l = d.path("dhcp.leases");
    let h = d.path("hosts.d");
    let mut ln = LocalNames::new(cfg(vec![h.clone(), d.path("nope")], vec![l.clone()], None));
    ln.reload_all(NOW);
    assert!(ln.is_empty());
    assert!(!ln.poll(NOW));
    d.write("dhcp.leases", b"0 aa 192.168.1.20 late *\n");
    assert!(ln.poll(NOW + 1));
    assert_eq!(a4(&ln, "late", NOW + 1), vec![v4("192.168.1.20")]);
    fs::create_dir(&h).expect("mkdir");
    fs::write(h.join("x"), b"10.0.0.1 indir\n").expect("w");
    assert!(ln.poll(NOW + 2));
    assert_eq!(a4(&ln, "indir", NOW + 2), vec![v4("10.0.0.1")]);
    fs::remove_file(&l).expect("rm");
    assert!(ln.poll(NOW + 3));
    assert!(ln.lookup_name(b"late", NOW + 3).is_none());
    fs::remove_dir_all(&h).expect("rm");
    assert!(ln.poll(NOW + 4));
    assert!(ln.is_empty());
    assert!(!ln.poll(NOW + 5));
}

#[test]
fn reload_all_rereads() {
    let d = TempDir::new("localnames-reload");
    let h = d.write("hosts", b"10.0.0.1 a\n");
    let mut ln = loaded(vec![h.clone()], vec![], None);
    fs::write(&h, b"10.0.0.2 a\n").expect("w");
    ln.reload_all(NOW);
    assert_eq!(a4(&ln, "a", NOW), vec![v4("10.0.0.2")]);
}

// ---------------------------------------------------------------------------
// reverse names

#[test]
fn ptr_lookups_v4_v6() {
    let d = TempDir::new("localnames-ptr");
    let h = d.write("hosts", b"192.168.1.5 nas\n2001:db8::1:5 nas\nfe80::1 ll\n");
    let ln = loaded(vec![h], vec![], Some("lan"));
    let q4 = reverse_name(ip("192.168.1.5"));
    assert_eq!(q4, "5.1.168.192.in-addr.arpa");
    let a = parse_ptr_name(q4.as_bytes()).expect("v4 ptr");
    assert_eq!(ln.lookup_addr(a, NOW).as_deref(), Some(&b"nas.lan"[..]));
    let q6 = reverse_name(ip("2001:db8::1:5"));
    assert_eq!(
        q6,
        "5.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
    let a = parse_ptr_name(q6.as_bytes()).expect("v6 ptr");
    assert_eq!(ln.lookup_addr(a, NOW).as_deref(), Some(&b"nas.lan"[..]));
    assert_eq!(ptr(&ln, "fe80::1", NOW).as_deref(), Some("ll.lan"));
}

#[test]
fn parse_ptr_name_round_trips() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut addrs: Vec<IpAddr> = vec![
        ip("0.0.0.0"),
        ip("255.255.255.255"),
        ip("10.0.0.1"),
        ip("::"),
        ip("::1"),
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ip("::ffff:1.2.3.4"),
    ];
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        addrs.push(IpAddr::V4(Ipv4Addr::from((x >> 16) as u32)));
        addrs.push(IpAddr::V6(Ipv6Addr::from(
            (u128::from(x) << 64) | u128::from(x.rotate_left(29)),
        )));
    }
    for a in addrs {
        let n = reverse_name(a);
        assert_eq!(parse_ptr_name(n.as_bytes()), Some(a), "{n}");
        assert_eq!(parse_ptr_name(format!("{n}.").as_bytes()), Some(a));
        // Uppercase is accepted too (the caller normally lowers).
        assert_eq!(parse_ptr_name(n.to_ascii_uppercase().as_bytes()), Some(a));
    }
}

#[test]
fn parse_ptr_name_rejects() {
    let z31 = "0.".repeat(31);
    let z32 = "0.".repeat(32);
    let z33 = "0.".repeat(33);
    for bad in [
        "in-addr.arpa",
        ".in-addr.arpa",
        "3.2.1.in-addr.arpa",
        "5.4.3.2.1.in-addr.arpa",
        "4.3.2.256.in-addr.arpa",
        "4.3.2.01.in-addr.arpa",
        "4.3..1.in-addr.arpa",
        "4.3.2.-1.in-addr.arpa",
        "4.3.2.1.in-addr.arpa.com",
        "4.3.2.1.in-addr.arpa..",
        "4.3.2.1",
        "ip6.arpa",
        "example.com",
        "",
    ] {
        assert_eq!(parse_ptr_name(bad.as_bytes()), None, "{bad}");
    }
    assert_eq!(parse_ptr_name(format!("{z31}ip6.arpa").as_bytes()), None);
    assert_eq!(parse_ptr_name(format!("{z33}ip6.arpa").as_bytes()), None);
    assert_eq!(
        parse_ptr_name(format!("{z32}ip6.arpa").as_bytes()),
        Some(ip("::"))
    );
    assert_eq!(parse_ptr_name(format!("{z31}g.ip6.arpa").as_bytes()), None);
    assert_eq!(parse_ptr_name(format!("{z31}10.ip6.arpa").as_bytes()), None);
    assert_eq!(parse_ptr_name(format!("{z31}.ip6.arpa").as_bytes()), None);
    assert_eq!(
        parse_ptr_name(format!("{}00.ip6.arpa", "0.".repeat(30)).as_bytes()),
        None
    );
    assert_eq!(parse_ptr_name(b"4.3.2.1.in-addr.arpa\x00"), None);
    assert_eq!(parse_ptr_name(b"\xff.3.2.1.in-addr.arpa"), None);
}

#[test]
fn private_reverse_zones() {
    let z = |s: &str| is_private_reverse(s.as_bytes());
    for yes in [
        "10.in-addr.arpa",
        "1.2.3.10.in-addr.arpa",
        "16.172.in-addr.arpa",
        "1.0.31.172.in-addr.arpa",
        "168.192.in-addr.arpa",
        "5.1.168.192.in-addr.arpa",
        "5.1.168.192.in-addr.arpa.",
        "5.1.168.192.IN-ADDR.ARPA",
        "0.in-addr.arpa",
        "127.in-addr.arpa",
        "1.0.0.127.in-addr.arpa",
        "254.169.in-addr.arpa",
        "1.1.254.169.in-addr.arpa",
        "64.100.in-addr.arpa",
        "1.1.127.100.in-addr.arpa",
        "2.0.192.in-addr.arpa",
        "100.51.198.in-addr.arpa",
        "113.0.203.in-addr.arpa",
        "255.255.255.255.in-addr.arpa",
        "junk.10.in-addr.arpa",
        "d.f.ip6.arpa",
        "c.f.ip6.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        "8.e.f.ip6.arpa",
        "b.e.f.ip6.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa",
        "8.b.d.0.1.0.0.2.ip6.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        "x.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
    ] {
        assert!(z(yes), "{yes}");
    }
    for no in [
        "in-addr.arpa",
        "192.in-addr.arpa",
        "172.in-addr.arpa",
        "15.172.in-addr.arpa",
        "32.172.in-addr.arpa",
        "1.1.1.1.in-addr.arpa",
        "8.8.8.8.in-addr.arpa",
        "169.in-addr.arpa",
        "63.100.in-addr.arpa",
        "128.100.in-addr.arpa",
        "100.in-addr.arpa",
        "0.192.in-addr.arpa",
        "1.0.192.in-addr.arpa",
        "255.255.255.in-addr.arpa",
        "010.in-addr.arpa",
        "10.in-addr.arpa.example",
        "ip6.arpa",
        "f.ip6.arpa",
        "e.f.ip6.arpa",
        "c.e.f.ip6.arpa",
        "8.b.d.0.1.0.0.ip6.arpa",
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        "1.0.0.2.ip6.arpa",
        "example.com",
        "",
        "10",
    ] {
        assert!(!z(no), "{no}");
    }
}

// ---------------------------------------------------------------------------
// robustness

/// Rounds of the two randomised parser tests below. The host runs all of them (in the
/// optimised test build of `make test`); the router targets (musl, unit tests built at
/// opt-level 0 and run under qemu in `make cross-test`) run the first sixth of the
/// same deterministic sequence, which is where a 32-bit or big-endian difference would
/// show as well, at a sixth of the emulated CPU time.
const FUZZ_ROUNDS: usize = if cfg!(target_env = "musl") { 500 } else { 3000 };

#[test]
fn random_input_never_panics() {
    let alphabet: &[u8] =
        b"0123456789abcdefABCDEF.:/ \t\r\n#{};\"\\%*-_lease ends never epoch binding state active client-hostname duid \x00\xff\xc3";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let path = Path::new("fuzz");
    for round in 0..FUZZ_ROUNDS {
        let len = (next() % 400) as usize;
        let mut buf = Vec::with_capacity(len + 16);
        if round % 3 == 0 {
            buf.extend_from_slice(b"lease 10.0.0.1 {");
        }
        for _ in 0..len {
            let r = next() as usize;
            buf.push(*alphabet.get(r % alphabet.len()).unwrap_or(&b'x'));
        }
        let _ = super::hosts::parse(&buf, path);
        // Read line by line as from a file, a lease file parses as it does whole.
        let whole = leases::parse(&buf, path);
        let mut r = watch::LineReader::new(Box::new(std::io::Cursor::new(buf.clone())), path);
        let streamed = leases::parse_lines(&mut r, path).expect("reading from memory");
        assert_eq!(streamed, whole, "round {round}");
        let _ = leases::parse_dnsmasq(&buf, path);
        let _ = leases::parse_isc(&buf, path);
        let _ = parse_ptr_name(&buf);
        let _ = is_private_reverse(&buf);
        let mut q = buf.clone();
        q.extend_from_slice(b".in-addr.arpa");
        let _ = parse_ptr_name(&q);
        let _ = is_private_reverse(&q);
        let p = super::hosts::parse(&buf, path);
        let t = super::table::Table::build([&p], Some(b"lan"), NOW);
        let _ = t.lookup_name(&buf, Some(b"lan"), NOW);
    }
    // A huge single line and NUL-filled data.
    let huge = vec![b'a'; 1 << 20];
    let _ = super::hosts::parse(&huge, path);
    let _ = leases::parse(&huge, path);
    let _ = leases::parse_isc(&[b'{'; 100_000], path);
    let _ = leases::parse_isc(&[b'}'; 100_000], path);
    let _ = super::hosts::parse(&[0u8; 10_000], path);
}

/// An ISC file read line by line (one statement or block at a time) parses as
/// the whole file lexed in one pass, on random statement soup: blocks across
/// lines, strings with newlines and escapes, comments with braces, blocks cut off.
#[test]
fn isc_read_line_by_line_as_whole() {
    let words: &[&[u8]] = &[
        b"lease",
        b"10.0.0.1",
        b"10.0.0.2",
        b"fd00::1",
        b"{",
        b"{",
        b"}",
        b"}",
        b";",
        b";",
        b"\n",
        b"\n",
        b"\n",
        b" ",
        b"\"",
        b"\\",
        b"#",
        b"# { x\n",
        b"ends",
        b"never",
        b"epoch",
        b"1800000000",
        b"4 2027/01/15 10:00:00",
        b"binding",
        b"state",
        b"active",
        b"free",
        b"client-hostname",
        b"hostname",
        b"\"pc\"",
        b"\"a\\\"b\"",
        b"host",
        b"ia-na",
        b"x",
        b"\r\n",
        b"\"multi\nline\"",
        b"lease 10.0.0.3 {\n  binding state active;\n  client-hostname \"pc3\";\n}\n",
        b"lease 10.0.0.4 { ends never; hostname \"pc4\"; }",
        b"\nlease 10.0.0.3 {\n  ends epoch 1900000000;\n  client-hostname \"pc33\";\n}\n",
        b"lease 10.0.0.5 {\n  # }\n  hostname \"p{5\";\n  x { y; }\n}\n",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let path = Path::new("isc-fuzz");
    let mut named = 0;
    for round in 0..FUZZ_ROUNDS {
        // An ISC keyword first, so the format is detected as ISC.
        let mut buf = b"server-duid \"d\";\n".to_vec();
        for _ in 0..(next() % 120) {
            let r = next() as usize;
            buf.extend_from_slice(words.get(r % words.len()).unwrap_or(&&b"x"[..]));
            if r % 3 == 0 {
                buf.push(b' ');
            }
        }
        // The reference lexes the lines (CR stripped, as the reader does) in one pass.
        let mut joined = Vec::new();
        for (_, l) in super::syntax::lines(&buf) {
            joined.extend_from_slice(l);
            joined.push(b'\n');
        }
        let whole = leases::parse_isc_one_chunk(&joined, path);
        let mut r = watch::LineReader::new(Box::new(std::io::Cursor::new(buf.clone())), path);
        let streamed = leases::parse_lines(&mut r, path).expect("reading from memory");
        assert_eq!(streamed, whole, "round {round}: {}", buf.escape_ascii());
        assert_eq!(leases::parse_isc(&buf, path), whole, "round {round}");
        named += usize::from(!whole.is_empty());
    }
    // The soup does reach named leases, not only skipped blocks.
    assert!(
        named > FUZZ_ROUNDS / 30,
        "{named} rounds with a named lease"
    );
}

#[test]
fn never_constant_is_max() {
    assert_eq!(NEVER, u64::MAX);
}

/// CPU time of this thread in nanoseconds (Linux `schedstat`), 0 if unavailable:
/// wall time on a busy build host mostly measures the scheduler.
fn thread_cpu_ns() -> u64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// load time (not a timed assertion): cargo test --release -- --ignored --nocapture load_time

#[test]
#[ignore]
fn load_time_10k_leases_50k_hosts() {
    let d = TempDir::new("localnames-bench");
    let mut hosts = Vec::with_capacity(4 << 20);
    for i in 0..50_000u32 {
        let line = match i % 5 {
            0 => format!("0.0.0.0 ads{i}.tracker.example.com\n"),
            1 => format!(
                "10.{}.{}.{} host{i}.example.net host{i}\n",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            ),
            2 => format!("fd00::{:x} v6host{i}.example.org  # comment\n", i),
            3 => format!(
                "192.168.{}.{}\tname{i}\talias{i}a alias{i}b\r\n",
                (i >> 8) & 255,
                i & 255
            ),
            _ => format!("10.200.{}.{} shared{}\n", (i >> 8) & 255, i & 255, i % 1000),
        };
        hosts.extend_from_slice(line.as_bytes());
    }
    let mut leases = Vec::with_capacity(1 << 20);
    for i in 0..10_000u32 {
        leases.extend_from_slice(
            format!(
                "{} 00:11:22:{:02x}:{:02x}:{:02x} 172.16.{}.{} client-{i} 01:00:11:22:33:44:55\n",
                NOW + 3600 + u64::from(i),
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255,
                (i >> 8) & 255,
                i & 255
            )
            .as_bytes(),
        );
    }
    let h = d.write("hosts", &hosts);
    let l = d.write("dhcp.leases", &leases);
    let mut ln = LocalNames::new(cfg(vec![h], vec![l], Some("lan")));
    let c0 = thread_cpu_ns();
    let t0 = std::time::Instant::now();
    ln.reload_all(NOW);
    let load = t0.elapsed();
    let load_cpu = std::time::Duration::from_nanos(thread_cpu_ns().saturating_sub(c0));
    let t1 = std::time::Instant::now();
    let changed = ln.poll(NOW);
    let poll = t1.elapsed();
    let t2 = std::time::Instant::now();
    let mut hits = 0usize;
    let queries = [
        &b"host1.example.net"[..],
        b"client-77.lan",
        b"alias3a",
        b"nothere.example",
        b"shared7",
    ];
    for i in 0..1_000_000usize {
        if let Some(q) = queries.get(i % queries.len()) {
            if ln.lookup_name(q, NOW).is_some() {
                hits += 1;
            }
        }
    }
    let look = t2.elapsed();
    let t3 = std::time::Instant::now();
    let mut phits = 0usize;
    for i in 0..1_000_000u32 {
        let a = IpAddr::V4(Ipv4Addr::new(
            172,
            16,
            ((i >> 8) & 39) as u8,
            (i & 255) as u8,
        ));
        if ln.lookup_addr(a, NOW).is_some() {
            phits += 1;
        }
    }
    let plook = t3.elapsed();
    // A lease renewal: only the lease layer is rebuilt.
    let mut renewed = leases.clone();
    renewed.extend_from_slice(b"0 00:11:22:33:44:55 172.16.200.1 newcomer *\n");
    d.replace("dhcp.leases", &renewed);
    let c4 = thread_cpu_ns();
    let t4 = std::time::Instant::now();
    let changed_l = ln.poll(NOW);
    let lpoll = t4.elapsed();
    let lpoll_cpu = std::time::Duration::from_nanos(thread_cpu_ns().saturating_sub(c4));
    assert!(changed_l && ln.lookup_name(b"newcomer", NOW).is_some());
    println!(
        "local names: {} hosts bytes + {} lease bytes -> {} names; reload_all {:?} (cpu {:?}); idle poll {:?} (changed={}); \
         1M name lookups {:?} ({} hits); 1M PTR lookups {:?} ({} hits); \
         poll after a lease-file rewrite {:?} (cpu {:?})",
        hosts.len(),
        leases.len(),
        ln.len(),
        load,
        load_cpu,
        poll,
        changed,
        look,
        hits,
        plook,
        phits,
        lpoll,
        lpoll_cpu
    );
}
