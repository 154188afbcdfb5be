//! The event loop: one thread, one `mio::Poll`, every socket, signal and timer in it.
//!
//! Data path: a listener becomes readable → `query` parses and answers from local names
//! or the cache → a miss goes to `forward`, whose upstream sockets come back here →
//! the answer is cached and replied to every waiting client.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket, UnixListener};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::cache::Cache;
use crate::config::{self, Config};
use crate::core::inflight;
use crate::core::upstreams::Upstreams;
use crate::rand::Rng;
use crate::signals::{Action, Signals};
use crate::slab::Slab;
use crate::stats::Stats;
use crate::tcp_client::TcpClient;

pub const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
/// Tokens below this are listeners; from here on, slab slots of `conns`, and from
/// `transport::TOKEN_BASE` on, upstream sockets.
pub const CONN_BASE: usize = 1 << 16;
/// How often housekeeping runs (file checks, probes, periodic writes).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// The cache clock starts here rather than at 0, so entries loaded from the persist file
/// can have been inserted before this process started.
const CLOCK_BASE: u32 = 1 << 30;

pub enum Listener {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpListener, SocketAddr),
    Ctl(UnixListener, PathBuf),
}

/// Client connections: everything with a token besides listeners, upstream sockets
/// and the signalfd.
pub enum Conn {
    Client(TcpClient),
    Ctl(crate::control::CtlConn),
}

/// A question in flight as the daemon keeps it: attempts over its transports, the
/// failure answer prepared for its clients.
pub type Pending = inflight::Pending<crate::transport::Proto, crate::answer::Prepared>;
/// A question in flight as the pending table holds it. Boxed in builds with encrypted
/// upstreams, where finished records are kept for new questions: a miss then moves no
/// 700-byte record into the table and out of it again, and allocates nothing. Inline
/// in the plain router binary, which has no room left in its size budget.
#[cfg(feature = "tls")]
pub type PendingSlot = Box<Pending>;
#[cfg(not(feature = "tls"))]
pub type PendingSlot = Pending;
/// One attempt of a [`Pending`] question.
pub type Attempt = inflight::Attempt<crate::transport::Proto>;

/// Buffers a miss takes over from the one before: each would otherwise be allocated
/// (and fresh memory touched) per miss.
#[derive(Default)]
pub(crate) struct MissBuffers {
    /// Filtering and rewriting an answer.
    pub(crate) scratch: crate::sanitize::Scratch,
    /// An answer's stored form (bytes, TTL offsets) on its way to the cache and replies.
    pub(crate) stored: Vec<u8>,
    pub(crate) stored_pos: Vec<u16>,
    /// Records of finished questions, for new ones (with their lists' capacity).
    #[cfg(feature = "tls")]
    pub(crate) spare_pending: Vec<PendingSlot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Pending(usize, u32),
    Stale(usize, u32),
    Client(usize, u32),
}

/// Identity of a file for change detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
}

impl FileStamp {
    pub fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
        })
    }
}

/// The upstream choice draws from the kernel's CSPRNG in the daemon.
impl crate::core::upstreams::Draw for Rng {
    fn below(&mut self, n: u32) -> u32 {
        Rng::below(self, n)
    }
}

/// Parses configured domain names, warning about (and skipping) bad ones.
fn names(option: &str, list: &[String]) -> Vec<crate::wire::NameBuf> {
    list.iter()
        .filter_map(|n| match crate::wire::NameBuf::from_dotted(n) {
            Ok(n) => Some(n),
            Err(_) => {
                log::warn!("{option}: '{n}' is not a domain name, ignored");
                None
            }
        })
        .collect()
}

pub struct Server {
    pub(crate) poll: Poll,
    pub(crate) cfg: Config,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) conns: Slab<Conn>,
    /// Upstream sockets, under the attempts they serve.
    pub(crate) transports: crate::transport::Transports,
    pub(crate) pending: Slab<PendingSlot>,
    /// Cache key → pending slot, for merging identical questions in flight.
    pub(crate) inflight: crate::core::inflight::InflightIndex,
    pub(crate) cache: Cache,
    pub(crate) upstreams: Upstreams,
    pub(crate) rng: Rng,
    signals: Signals,
    pub(crate) timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    /// `now` on the cache's clock ([`Self::now_secs`]), set with it.
    clock_secs: u32,
    /// UNIX seconds, read at most a second before this loop turn began.
    wall_now: u64,
    pub(crate) stats: Stats,
    pub(crate) config_status: crate::stats::ConfigStatus,
    /// Batched UDP: datagrams received in one recvmmsg, replies waiting for sendmmsg.
    recv_batch: crate::batch::RecvBatch,
    send_batch: crate::batch::SendBatch,
    /// UDP listeners with datagrams left after a full batch (epoll is edge-triggered).
    udp_backlog: Vec<usize>,
    /// New misses whose first upstream attempt waits until the batch's replies are out.
    pub(crate) deferred_attempts: Vec<(usize, u32)>,
    /// Scratch buffers: a reply being written, a query being sent, a datagram received.
    pub(crate) out: Vec<u8>,
    pub(crate) qbuf: Vec<u8>,
    pub(crate) rbuf: Vec<u8>,
    pub(crate) miss: MissBuffers,
    pub(crate) resolv_stamp: Option<FileStamp>,
    next_housekeeping: Instant,
    pub(crate) serial: u32,
    pub(crate) pending_gen: u32,
    /// The generation of the question in each pending slot, NO_GEN when free: what
    /// tells a dead timer at the head of the heap from a live one each loop turn,
    /// read from 4 bytes a slot instead of the slot's record (a cache miss a turn).
    #[cfg(feature = "tls")]
    pub(crate) pending_gens: Vec<u32>,
    pub(crate) link: crate::core::link::Link,
    /// `stale_exclude` as names.
    pub(crate) stale_exclude: Vec<crate::wire::NameBuf>,
    /// `rebind_domain` and the local domain as names.
    pub(crate) rebind_exempt: Vec<crate::wire::NameBuf>,
    pub(crate) rebind_logged: Vec<String>,
    pub(crate) acl: crate::acl::Acl,
    pub(crate) local: crate::localnames::LocalNames,
    pub(crate) local_cfg: Option<crate::localnames::LocalConfig>,
    pub(crate) block: crate::blocklist::Blocklist,
    pub(crate) block_cfg: Option<(Vec<PathBuf>, Vec<String>)>,
    /// Scratch: a question name in lowercase presentation form.
    pub(crate) lower: Vec<u8>,
    /// Scratch: the query being handled and its cache key, kept between queries.
    pub(crate) scratch_query: Option<Box<crate::wire::QueryView>>,
    pub(crate) scratch_key: Option<Box<crate::cache::Key>>,
    pub(crate) ratelimit: crate::acl::RateLimiter,
    next_persist: Option<Instant>,
    running: bool,
    /// The command line's `-l`/`-u`/`-v`/`-q`, put over every config loaded.
    overrides: config::Overrides,
    /// Whether the system time is known good (`ctl time-synced`), for validity dates.
    #[cfg(any(feature = "tls", feature = "dnssec"))]
    pub(crate) clock: crate::clock_trust::ClockTrust,
    /// DNSSEC validations in progress, validated key sets and counters.
    #[cfg(feature = "dnssec")]
    pub(crate) dnssec: crate::core::validation::State,
}

impl Server {
    /// Binds every listen address; fails if any cannot be bound.
    pub fn new(cfg: Config, overrides: config::Overrides) -> Result<Server, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        let signals = Signals::new().map_err(|e| format!("cannot set up signals: {e}"))?;
        poll.registry()
            .register(
                &mut SourceFd(&signals.raw_fd()),
                SIGNAL_TOKEN,
                Interest::READABLE,
            )
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        let mut listeners = Vec::new();
        for addr in &cfg.listen {
            let udp = crate::sockets::udp_listener(*addr)
                .map_err(|e| format!("cannot listen on {addr} (udp): {e}"))?;
            let tcp = crate::sockets::tcp_listener(*addr)
                .map_err(|e| format!("cannot listen on {addr} (tcp): {e}"))?;
            listeners.push(Listener::Udp(udp, *addr));
            listeners.push(Listener::Tcp(tcp, *addr));
        }
        if let Some(path) = &cfg.control_socket {
            // Without the control socket the daemon still serves DNS.
            match crate::control::bind(path) {
                Ok(l) => listeners.push(Listener::Ctl(l, path.clone())),
                Err(e) => log::warn!("control socket {}: {e}", path.display()),
            }
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            let r = match l {
                Listener::Udp(s, _) => poll.registry().register(s, Token(i), Interest::READABLE),
                Listener::Tcp(s, _) => poll.registry().register(s, Token(i), Interest::READABLE),
                Listener::Ctl(s, _) => poll.registry().register(s, Token(i), Interest::READABLE),
            };
            r.map_err(|e| format!("cannot register listener: {e}"))?;
        }
        let rng = Rng::new().map_err(|e| {
            format!("cannot read random numbers from the kernel ({e}); refusing to start")
        })?;
        let now = Instant::now();
        let mut s = Server {
            poll,
            cache: Cache::new(cfg.cache_size_kib as usize * 1024),
            cfg,
            listeners,
            conns: Slab::default(),
            transports: Default::default(),
            #[cfg(any(feature = "tls", feature = "dnssec"))]
            clock: Default::default(),
            #[cfg(feature = "dnssec")]
            dnssec: Default::default(),
            pending: Slab::default(),
            inflight: Default::default(),
            upstreams: Upstreams::default(),
            rng,
            signals,
            timers: BinaryHeap::new(),
            start: now,
            now,
            clock_secs: CLOCK_BASE,
            wall_now: Self::read_wall_clock(),
            stats: Stats::default(),
            config_status: Default::default(),
            recv_batch: Default::default(),
            send_batch: Default::default(),
            udp_backlog: Vec::new(),
            deferred_attempts: Vec::new(),
            out: Vec::with_capacity(4096),
            qbuf: Vec::with_capacity(512),
            rbuf: vec![0u8; 4096],
            miss: Default::default(),
            resolv_stamp: None,
            next_housekeeping: now,
            serial: 0,
            pending_gen: 0,
            #[cfg(feature = "tls")]
            pending_gens: Vec::new(),
            link: crate::core::link::Link::default(),
            stale_exclude: Vec::new(),
            rebind_exempt: Vec::new(),
            rebind_logged: Vec::new(),
            acl: crate::acl::Acl::default(),
            local: crate::localnames::LocalNames::new(Default::default()),
            local_cfg: None,
            block: Default::default(),
            block_cfg: None,
            lower: Vec::with_capacity(256),
            scratch_query: None,
            scratch_key: None,
            ratelimit: crate::acl::RateLimiter::new(0, 0),
            next_persist: None,
            running: true,
            overrides,
        };
        s.config_status.loaded_at = s.wall_secs();
        s.apply_config();
        s.apply_local_config();
        s.enforce_memory_limit();
        #[cfg(any(feature = "tls", feature = "dnssec"))]
        s.restore_clock();
        s.load_servers();
        s.load_persisted();
        s.drop_blocked_cached();
        for l in &s.cfg.listen {
            log::info!("listening on {l} (udp, tcp)");
        }
        Ok(s)
    }

    /// Seconds since start, the cache's clock.
    pub(crate) fn now_secs(&self) -> u32 {
        self.clock_secs
    }

    /// UNIX time in seconds, read when the cache clock's second changes.
    pub(crate) fn wall_secs(&self) -> u64 {
        self.wall_now
    }

    fn read_wall_clock() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Derived settings that follow the config (at start and on reload).
    fn apply_config(&mut self) {
        self.stale_exclude = names("stale_exclude", &self.cfg.stale_exclude);
        let mut exempt = self.cfg.rebind_domain.clone();
        exempt.extend(self.cfg.domain.clone());
        self.rebind_exempt = names("rebind_domain", &exempt);
        self.acl = crate::acl::Acl::new(&self.cfg);
        self.ratelimit = crate::acl::RateLimiter::new(self.cfg.rate_limit, self.cfg.rate_burst);
        // A reload keeps the write already due: SIGHUPs more frequent than the interval
        // must not put the periodic write off for ever.
        self.next_persist = match (&self.cfg.persist_file, self.cfg.persist_interval) {
            (Some(_), n) if n > 0 => {
                let at = self.now + Duration::from_secs(n as u64);
                Some(self.next_persist.map_or(at, |due| due.min(at)))
            }
            _ => None,
        };
    }

    fn load_persisted(&mut self) {
        let Some(path) = self.cfg.persist_file.clone() else {
            return;
        };
        // The file holds at most the cache, so twice its budget is plenty.
        let cap = u64::from(self.cfg.cache_size_kib) * 2048 + (1 << 20);
        let data = match config::read_capped(&path, cap) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log::info!("{}: no saved cache yet", path.display());
                return;
            }
            Err(e) => {
                log::warn!("{}: {e}; starting with an empty cache", path.display());
                return;
            }
        };
        match crate::persist::make_private(&path) {
            Ok(Some(m)) => log::info!("{}: was mode {m:o}, now 600", path.display()),
            Ok(None) => {}
            Err(e) => log::warn!("{}: cannot make it private: {e}", path.display()),
        }
        let (clock, wall, stale_max) = (self.now_secs(), self.wall_secs(), self.cfg.stale_max);
        match crate::persist::decode(&data, &mut self.cache, clock, wall, stale_max) {
            Ok(r) => {
                if r.clock_behind {
                    log::warn!(
                        "{}: the clock is earlier than when it was written; loaded as stale",
                        path.display()
                    );
                }
                log::info!(
                    "{}: loaded {} fresh and {} stale entries ({} dropped)",
                    path.display(),
                    r.fresh,
                    r.stale,
                    r.skipped
                );
            }
            Err(e) => log::warn!("{}: {e}; starting with an empty cache", path.display()),
        }
    }

    /// Writes the cache to the persist file, if one is configured.
    pub(crate) fn save_persisted(&mut self) {
        let Some(path) = self.cfg.persist_file.clone() else {
            return;
        };
        let data = crate::persist::encode(
            &self.cache,
            self.now_secs(),
            self.wall_secs(),
            self.cfg.stale_max,
        );
        match crate::persist::write_atomic(&path, &data) {
            Ok(()) => log::info!("{}: saved {} bytes", path.display(), data.len()),
            Err(e) => log::error!(
                "{}: cannot save the cache as user {}: {e}",
                path.display(),
                crate::privs::current_user()
            ),
        }
    }

    /// Keeps cache + questions in flight + TCP buffers + I/O buffers within
    /// `memory_limit`: questions in flight and TCP clients may each take a quarter, the I/O
    /// buffers are fixed, and the cache gets the rest (everything in it can be asked again).
    pub(crate) fn enforce_memory_limit(&mut self) {
        /// Receive batch, receive buffer, send batch and scratch space.
        const IO_BUFFERS: usize = 2 * crate::batch::BATCH * crate::batch::SLOT + 4096 + 16384;
        let limit = self.cfg.memory_limit_kib as usize * 1024;
        let configured = self.cfg.cache_size_kib as usize * 1024;
        let budget = if limit == 0 {
            configured
        } else {
            configured.min((limit / 2).saturating_sub(IO_BUFFERS))
        };
        if budget != self.cache.budget() {
            self.cache.set_budget(budget);
        }
    }

    /// Counters kept outside `Stats`.
    pub(crate) fn extra_stats(&self) -> Vec<(&'static str, u64)> {
        #[allow(unused_mut)]
        let mut v = vec![
            ("pending", self.pending.len() as u64),
            ("local_names", self.local.len() as u64),
            ("blocklist_domains", self.block.len() as u64),
        ];
        #[cfg(feature = "dnssec")]
        if self.cfg.dnssec.enabled {
            v.extend(self.dnssec.stats());
        }
        v
    }

    pub(crate) fn add_timer(&mut self, at: Instant, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    /// Runs until SIGTERM or SIGINT.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while self.running {
            #[cfg(feature = "tls")]
            self.drop_dead_timers();
            let next = self
                .timers
                .peek()
                .map(|Reverse((at, _))| *at)
                .unwrap_or(self.next_housekeeping)
                .min(self.next_housekeeping);
            #[cfg(feature = "tls")]
            let next = self
                .transports
                .next_deadline()
                .map_or(next, |d| next.min(d));
            // From the start of this turn, not a new clock read: the wait then runs as
            // long as this turn took (microseconds) past a deadline.
            let timeout = if self.udp_backlog.is_empty() {
                next.saturating_duration_since(self.now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = Instant::now();
            let secs = CLOCK_BASE + self.now.saturating_duration_since(self.start).as_secs() as u32;
            // The wall clock once a second: a step of it (NTP at boot) shows within one.
            // Reading it every turn was a clock read per query and wake-up.
            if secs != self.clock_secs {
                self.clock_secs = secs;
                self.wall_now = Self::read_wall_clock();
            }
            for ev in events.iter() {
                self.dispatch(ev);
            }
            for li in std::mem::take(&mut self.udp_backlog) {
                self.udp_readable(li);
            }
            self.run_timers();
            #[cfg(feature = "tls")]
            for slot in self.transports.tick(self.now) {
                self.upstream_ready(slot);
            }
            #[cfg(feature = "doh")]
            self.doh_bootstrap();
            // Misses from TCP clients (or queries they sent while a timer answered
            // them) not yet started.
            self.start_deferred_attempts();
            self.flush_udp();
            if self.now >= self.next_housekeeping {
                self.housekeeping();
                self.next_housekeeping = self.now + HOUSEKEEPING;
            }
            // The DoT queries of this turn, sealed and written together.
            #[cfg(feature = "tls")]
            self.transports.flush_tls(self.now);
        }
        self.flush_udp();
        self.save_persisted();
        if let Some(Listener::Ctl(_, path)) = self
            .listeners
            .iter()
            .find(|l| matches!(l, Listener::Ctl(..)))
        {
            let _ = std::fs::remove_file(path);
        }
        log::info!("exiting");
        Ok(())
    }

    fn dispatch(&mut self, ev: &mio::event::Event) {
        let t = ev.token();
        if t == SIGNAL_TOKEN {
            while let Some(a) = self.signals.pending() {
                self.on_signal(a);
            }
        } else if t.0 < self.listeners.len() {
            match self.listeners[t.0] {
                Listener::Udp(..) => self.udp_readable(t.0),
                Listener::Tcp(..) => self.accept(t.0),
                Listener::Ctl(..) => self.ctl_accept(t.0),
            }
        } else if t.0 >= crate::transport::TOKEN_BASE {
            let slot = t.0 - crate::transport::TOKEN_BASE;
            #[cfg(feature = "tls")]
            self.transports
                .readiness(slot, ev.is_readable(), ev.is_read_closed() || ev.is_error());
            self.upstream_ready(slot);
        } else if t.0 >= CONN_BASE {
            let i = t.0 - CONN_BASE;
            match self.conns.get(i) {
                Some(Conn::Client(_)) => self.client_ready(i, ev.is_readable(), ev.is_writable()),
                Some(Conn::Ctl(_)) => self.ctl_ready(i),
                None => {}
            }
        }
    }

    /// Pops the timers at the head of the heap whose question is gone, so that the
    /// loop does not wake for them (see `core::timers::drop_dead_heads`).
    #[cfg(feature = "tls")]
    fn drop_dead_timers(&mut self) {
        let gens = &self.pending_gens;
        crate::core::timers::drop_dead_heads(&mut self.timers, |t| match *t {
            Timer::Pending(i, gen) | Timer::Stale(i, gen) => gens.get(i) != Some(&gen),
            Timer::Client(..) => false,
        });
    }

    fn run_timers(&mut self) {
        while let Some(Reverse((at, t))) = self.timers.peek().copied() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            match t {
                Timer::Pending(i, gen) => self.pending_timer(i, gen),
                Timer::Stale(i, gen) => self.stale_timer(i, gen),
                Timer::Client(i, serial) => self.client_timer(i, serial),
            }
        }
    }

    fn on_signal(&mut self, a: Action) {
        match a {
            Action::Exit => {
                log::info!("signal: exit");
                self.running = false;
            }
            Action::Reload => {
                log::info!("signal: reload");
                self.reload();
            }
            Action::LinkUp => self.link_up("SIGUSR1"),
            Action::LinkDown => self.link_down("SIGUSR2"),
        }
    }

    /// Re-reads the config file (SIGHUP). The cache is kept; a bad file changes nothing.
    fn reload(&mut self) {
        let Some(path) = self.cfg.file.clone() else {
            self.load_servers();
            self.apply_local_config();
            return;
        };
        let loaded = config::load(&path);
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        self.config_status.reload_at = Some(self.wall_secs());
        let mut new = match loaded.config {
            Ok(c) => c,
            Err(errs) => {
                // One line: the file, every problem, and what happens.
                let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                self.config_status.reload_error = Some(all.join("; "));
                log::error!(
                    "reload failed, keeping the running configuration: {}",
                    all.join("; ")
                );
                return;
            }
        };
        self.config_status.reload_error = None;
        self.config_status.loaded_at = self.wall_secs();
        // Command-line overrides stay in force.
        self.overrides.apply(&mut new);
        if self.cfg.listen != new.listen {
            log::warn!("reload: listen addresses changed; restart dproxy to apply");
            new.listen = self.cfg.listen.clone();
        }
        log::set_max_level(new.log_level);
        self.cfg = new;
        self.apply_config();
        self.apply_local_config();
        self.enforce_memory_limit();
        self.load_servers();
    }

    /// Takes upstream servers from the config, or else from the resolv file.
    pub(crate) fn load_servers(&mut self) {
        #[cfg(feature = "tls")]
        if !self.cfg.encrypted.servers.is_empty() {
            return self.load_tls_servers();
        }
        let servers = if !self.cfg.servers.is_empty() {
            self.resolv_stamp = None;
            self.cfg.servers.clone()
        } else if let Some(rf) = self.cfg.resolvfile.clone() {
            self.resolv_stamp = FileStamp::of(&rf);
            match config::read_resolvfile(&rf, &self.cfg.listen) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!(
                        "{}: {e}; no upstream servers until it appears",
                        rf.display()
                    );
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if servers != self.upstreams.addrs() {
            if servers.is_empty() {
                log::warn!("no upstream servers: misses are answered SERVFAIL");
            } else {
                let list: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
                log::info!("upstream servers: {}", list.join(" "));
            }
            self.upstreams.set(&servers);
        }
    }

    fn resolvfile(&self) -> Option<PathBuf> {
        if self.cfg.servers.is_empty() {
            self.cfg.resolvfile.clone()
        } else {
            None
        }
    }

    fn housekeeping(&mut self) {
        if let Some(rf) = self.resolvfile() {
            if FileStamp::of(&rf) != self.resolv_stamp {
                log::info!("{} changed", rf.display());
                self.load_servers();
            }
        }
        self.link_housekeeping();
        self.enforce_memory_limit();
        let wall = self.wall_secs();
        if self.local.poll(wall) {
            log::info!("local names changed: {} entries", self.local.len());
        }
        self.refresh_blocklists(false);
        if let Some(at) = self.next_persist {
            if self.now >= at {
                self.save_persisted();
                let every = Duration::from_secs(self.cfg.persist_interval.max(1) as u64);
                self.next_persist = Some(self.now + every);
            }
        }
    }

    /// Queues the reply in `self.out` for a UDP client; sent in batches.
    pub(crate) fn send_udp(&mut self, listener: usize, peer: SocketAddr) {
        self.send_batch.push(listener, peer, &self.out);
        if self.send_batch.full() {
            self.flush_udp();
        }
    }

    /// Sends the queued UDP replies.
    pub(crate) fn flush_udp(&mut self) {
        if self.send_batch.is_empty() {
            return;
        }
        let listeners = &self.listeners;
        let (sent, failed) = self.send_batch.flush(|li| match listeners.get(li) {
            Some(Listener::Udp(s, _)) => Some(s.as_raw_fd()),
            _ => None,
        });
        self.stats.replies += sent as u64;
        self.stats.send_errors += failed as u64;
    }

    fn udp_readable(&mut self, li: usize) {
        let fd = match &self.listeners[li] {
            Listener::Udp(s, _) => s.as_raw_fd(),
            _ => return,
        };
        let mut batch = std::mem::take(&mut self.recv_batch);
        // A few batches per turn so one busy socket cannot starve the rest; what is left
        // is read on the next turn (the backlog), since epoll will not report it again.
        let mut rounds = 0;
        loop {
            match batch.recv(fd) {
                Ok(n) => {
                    for i in 0..n {
                        match batch.get(i) {
                            Some((msg, peer)) if !msg.is_empty() => {
                                let to = crate::core::inflight::ReplyTo::Udp { listener: li, peer };
                                self.handle_query(msg, to, peer.ip());
                            }
                            _ => self.stats.drop_malformed += 1,
                        }
                    }
                    if n < crate::batch::BATCH {
                        break;
                    }
                    rounds += 1;
                    if rounds == 8 {
                        self.udp_backlog.push(li);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("udp receive: {e}");
                    break;
                }
            }
        }
        self.recv_batch = batch;
        self.start_deferred_attempts();
    }

    pub(crate) fn register_conn(&mut self, conn: Conn, interest: Interest) -> io::Result<usize> {
        let i = self.conns.insert(conn);
        let token = Token(CONN_BASE + i);
        let reg = self.poll.registry();
        let r = match self.conns.get_mut(i) {
            Some(Conn::Client(c)) => reg.register(&mut c.stream, token, interest),
            Some(Conn::Ctl(c)) => reg.register(&mut c.stream, token, interest),
            None => Ok(()),
        };
        if let Err(e) = r {
            self.conns.remove(i);
            return Err(e);
        }
        Ok(i)
    }

    pub(crate) fn close_conn(&mut self, i: usize) {
        let reg = self.poll.registry();
        match self.conns.remove(i) {
            Some(Conn::Client(mut c)) => {
                let _ = reg.deregister(&mut c.stream);
            }
            Some(Conn::Ctl(mut c)) => {
                let _ = reg.deregister(&mut c.stream);
            }
            None => {}
        }
    }
}
