//! Heap use of the local-names table, counted by a global allocator: the bench's
//! shape (a 50,000-line hosts file and 10,000 dnsmasq leases with `domain lan`)
//! must load, stay and reload within fixed bytes per name. Byte counts, not
//! timings: deterministic for a given build.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use dproxy::localnames::{LocalConfig, LocalNames};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            // Counted as alloc-then-free: a moving realloc holds both for a moment.
            grew(new);
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

const NOW: u64 = 1_800_000_000;

/// Writes `data` to a file of this test's own in the temporary directory.
fn write_temp(name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("dproxy-mem-{}-{name}", std::process::id()));
    std::fs::write(&p, data).expect("write a file in the temporary directory");
    p
}

/// The tests here share the counters: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Live bytes now, after resetting the high-water mark to them.
fn reset_peak() -> usize {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

#[test]
fn bench_shape_bytes_per_name() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut hosts = Vec::new();
    hosts.extend_from_slice(b"# 50,000 lines\n");
    for k in 0..49_999u32 {
        let line = if k % 10 == 9 {
            format!(
                "fd00::{:x}:{:x}\thost{k}6 host{k}6.lan\n",
                k >> 16,
                k & 0xffff
            )
        } else {
            format!(
                "172.{}.{}.{}\thost{k} host{k}.lan\n",
                16 + (k >> 16),
                (k >> 8) & 255,
                k & 255
            )
        };
        hosts.extend_from_slice(line.as_bytes());
    }
    let mut leases = Vec::new();
    for k in 0..10_000u32 {
        let mac = format!("02:00:00:00:{:02x}:{:02x}", k >> 8, k & 255);
        let line = format!(
            "{} {mac} 10.100.{}.{} lease{k} 01:{mac}\n",
            NOW + 86_400,
            k >> 8,
            k & 255
        );
        leases.extend_from_slice(line.as_bytes());
    }
    let hosts_path = write_temp("hosts", &hosts);
    let leases_path = write_temp("leases", &leases);
    drop((hosts, leases));

    let mut ln = LocalNames::new(LocalConfig {
        hosts: vec![hosts_path.clone()],
        leasefiles: vec![leases_path.clone()],
        domain: Some("lan".into()),
    });
    let base = reset_peak();
    ln.reload_all(NOW);
    let load_peak = PEAK.load(Relaxed) - base;
    let steady = LIVE.load(Relaxed) - base;
    let names = ln.len();
    // 99,998 hosts names + 20,000 lease names, less 1,000 that coincide
    // (`host96` is on line 9 and on line 96, like the bench's file).
    assert_eq!(names, 118_998);
    assert!(ln.lookup_name(b"lease9999.lan", NOW).is_some());
    assert!(ln.lookup_name(b"host49996.lan", NOW).is_some());

    // A changed hosts file: re-read alone, its layer rebuilt.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts_path)
        .and_then(|mut f| f.write_all(b"10.9.9.9 newname\n"))
        .expect("append to the test's hosts file");
    reset_peak();
    let before = LIVE.load(Relaxed);
    assert!(ln.poll(NOW));
    let reload_peak = PEAK.load(Relaxed) - base;
    assert!(ln.lookup_name(b"newname.lan", NOW).is_some());
    let after = LIVE.load(Relaxed) - base;
    eprintln!(
        "{names} names: load peak {load_peak} B ({} B/name), steady {steady} B ({} B/name), \
         reload peak {reload_peak} B, after reload {after} B (before {})",
        load_peak / names,
        steady / names,
        before - base
    );
    let _ = std::fs::remove_file(&hosts_path);
    let _ = std::fs::remove_file(&leases_path);
    assert!(
        load_peak / names <= 50,
        "load peak {} B/name",
        load_peak / names
    );
    assert!(steady / names <= 44, "steady {} B/name", steady / names);
    // A reload holds at most the changed file twice and one table, never two.
    assert!(
        reload_peak * 10 <= steady * 13,
        "reload peak {reload_peak} B over 1.3 x steady {steady} B"
    );
    assert!(
        after <= steady + 1024,
        "{after} B after the reload, {steady} B before"
    );
}

/// A lease file is parsed as it is read: loading a 1.6 MB dnsmasq lease file
/// whose leases are almost all nameless (`*`: nothing to keep) never holds
/// the file whole.
#[test]
fn lease_file_read_line_by_line() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut leases = Vec::new();
    for k in 0..20_000u32 {
        let mac = format!("02:00:00:00:{:02x}:{:02x}", k >> 8, k & 255);
        let host = if k % 1000 == 0 {
            format!("named{k}")
        } else {
            "*".to_string()
        };
        let line = format!(
            "{} {mac} 10.100.{}.{} {host} 01:{mac}:{mac}\n",
            NOW + 86_400,
            k >> 8,
            k & 255
        );
        leases.extend_from_slice(line.as_bytes());
    }
    let (size, peak) = load_peak_of_lease_file("stream-leases", leases);
    assert!(peak < size / 4, "load peak {peak} B for a {size} B file");
}

/// An ISC dhcpd.leases file is parsed one statement or block at a time: loading
/// a 5 MB file whose lease blocks are almost all nameless never holds it whole.
/// What the load does hold is the list of every block's address (about 40 B a
/// block, twice that while the list grows), for the latest-block-wins rule.
#[test]
fn isc_lease_file_read_block_by_block() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut leases =
        b"# The format of this file is documented in the dhcpd.leases(5) manual page.\n\
        authoring-byte-order little-endian;\n\n"
            .to_vec();
    for k in 0..20_000u32 {
        let name = if k % 1000 == 0 {
            format!("  client-hostname \"named{k}\";\n")
        } else {
            String::new()
        };
        let block = format!(
            "lease 10.100.{}.{} {{\n  starts epoch {NOW};\n  ends epoch {};\n  \
             cltt epoch {NOW};\n  binding state active;\n  next binding state free;\n  \
             rewind binding state free;\n  hardware ethernet 02:00:00:00:{:02x}:{:02x};\n  \
             uid \"\\001\\002\\000\\000\\000{k}\";\n{name}}}\n",
            k >> 8,
            k & 255,
            NOW + 86_400,
            k >> 8,
            k & 255
        );
        leases.extend_from_slice(block.as_bytes());
    }
    let (size, peak) = load_peak_of_lease_file("stream-dhcpd.leases", leases);
    assert!(peak < size / 2, "load peak {peak} B for a {size} B file");
}

/// Writes `leases` (20 named leases among many, the last named `named19000`) to a
/// file, loads it as the only lease file and checks the 20 names are there: (file
/// size, heap peak of the load). The file's bytes are freed before the load.
fn load_peak_of_lease_file(tag: &str, leases: Vec<u8>) -> (usize, usize) {
    let size = leases.len();
    let path = write_temp(tag, &leases);
    drop(leases);
    let mut ln = LocalNames::new(LocalConfig {
        hosts: vec![],
        leasefiles: vec![path.clone()],
        domain: None,
    });
    let base = reset_peak();
    ln.reload_all(NOW);
    let peak = PEAK.load(Relaxed) - base;
    let _ = std::fs::remove_file(&path);
    assert_eq!(ln.len(), 20);
    assert!(ln.lookup_name(b"named19000", NOW).is_some());
    eprintln!("{size} B {tag}: load peak {peak} B");
    (size, peak)
}
