//! The command line: options, `--check-config`, logging setup, and starting the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{self, Config};

const USAGE: &str = "\
usage: dproxy [-c FILE] [-l ADDR[:PORT]]... [-u ADDR[:PORT]]... [-v|-q] [--check-config]
       dproxy ctl [-c FILE] [--socket PATH] stats [--json]|dump|flush|link up|link down|blocked NAME
       dproxy --help | --help-config | --version

  -c FILE          read the UCI config FILE (section: config dproxy 'main')
  -l ADDR[:PORT]   listen here instead of the configured addresses (repeatable)
  -u ADDR[:PORT]   forward to this upstream instead of the configured ones (repeatable)
  -v               log debug messages too
  -q               log errors only
  --check-config   check the configuration, print what is wrong, exit 0 or 1
  --help-config    list every config option with its default
  --version        print the version

ctl talks to the daemon through the control_socket of FILE (default
/etc/config/dproxy); --socket names the socket instead.

Signals: HUP reloads the config (the cache is kept), USR1 link up, USR2 link down,
TERM/INT exit.
";

/// What the command line said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub servers: Vec<SocketAddr>,
    pub verbose: bool,
    pub quiet: bool,
    pub check: bool,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
    HelpConfig,
    Version,
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    let port = config::DEFAULT_PORT;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--help-config" => return Ok(Command::HelpConfig),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => a.config = Some(PathBuf::from(value(arg)?)),
            "-l" | "--listen" => {
                let v = value(arg)?;
                let sa = config::parse_sockaddr(&v, port)
                    .ok_or_else(|| format!("-l: '{v}' is not an address or address:port"))?;
                a.listen.push(sa);
            }
            "-u" | "--upstream" => {
                let v = value(arg)?;
                let sa = config::parse_sockaddr(&v, 53)
                    .ok_or_else(|| format!("-u: '{v}' is not an address or address:port"))?;
                a.servers.push(sa);
            }
            "-v" | "--verbose" => a.verbose = true,
            "-q" | "--quiet" => a.quiet = true,
            "--check-config" => a.check = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if a.verbose && a.quiet {
        return Err("-v and -q contradict each other".into());
    }
    Ok(Command::Run(a))
}

impl Args {
    /// The settings the command line puts over the config file's, at start and on reload.
    pub fn overrides(&self) -> config::Overrides {
        let log_level = if self.verbose {
            Some(log::LevelFilter::Debug)
        } else if self.quiet {
            Some(log::LevelFilter::Error)
        } else {
            None
        };
        config::Overrides {
            listen: self.listen.clone(),
            servers: self.servers.clone(),
            log_level,
        }
    }
}

/// Builds the configuration from the file (if any) and the command line.
fn build_config(a: &Args) -> Result<Config, Vec<String>> {
    let mut cfg = match &a.config {
        Some(path) => {
            let loaded = config::load(path);
            for w in &loaded.warnings {
                log::warn!("{w}");
            }
            loaded
                .config
                .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?
        }
        None => Config::default(),
    };
    a.overrides().apply(&mut cfg);
    Ok(cfg)
}

/// The config `dproxy ctl` reads to find the daemon when `-c` names none.
pub const CTL_CONFIG: &str = "/etc/config/dproxy";

/// `dproxy ctl [-c FILE] [--socket PATH] WORDS`: unless `--socket` names the socket, it
/// is the `control_socket` of FILE (default [`CTL_CONFIG`]), the config the daemon runs with.
fn ctl(args: &[String]) -> i32 {
    let mut rest = Vec::new();
    let mut file = None;
    let mut socket_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => match it.next() {
                Some(f) => file = Some(PathBuf::from(f)),
                None => {
                    eprintln!("dproxy ctl: {a} needs a file");
                    return 2;
                }
            },
            "--socket" | "-s" => {
                socket_given = true;
                rest.push(a.clone());
            }
            _ => rest.push(a.clone()),
        }
    }
    if !socket_given {
        match ctl_socket(file.as_deref()) {
            Ok(p) => rest.splice(0..0, ["--socket".to_string(), p.display().to_string()]),
            Err(e) => {
                eprintln!("dproxy ctl: {e}");
                return 1;
            }
        };
    }
    crate::control::ctl_main(&rest)
}

/// The control socket named by a config file. Without `-c` and without the default
/// file (dproxy outside OpenWrt, no config), the daemon's built-in default.
pub fn ctl_socket(file: Option<&std::path::Path>) -> Result<PathBuf, String> {
    let path = match file {
        Some(f) => f,
        None => {
            let f = std::path::Path::new(CTL_CONFIG);
            if !f.exists() {
                return Ok(PathBuf::from(config::DEFAULT_CONTROL_SOCKET));
            }
            f
        }
    };
    match config::load(path).config {
        Ok(c) => c.control_socket.ok_or_else(|| {
            format!(
                "{}: control_socket is empty, so the daemon has no control socket",
                path.display()
            )
        }),
        Err(errs) => Err(format!(
            "{} (name the socket with --socket PATH)",
            errs.first()
                .map(|e| e.to_string())
                .unwrap_or_else(|| path.display().to_string())
        )),
    }
}

/// The program: returns the exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(|s| s.as_str()) == Some("ctl") {
        return ctl(&args[1..]);
    }
    crate::logger::init();
    let a = match parse(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Command::HelpConfig) => {
            print!("{}", crate::options_help::OPTIONS);
            return 0;
        }
        Ok(Command::Version) => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Ok(Command::Run(a)) => a,
        Err(e) => {
            eprintln!("dproxy: {e}\n{USAGE}");
            return 2;
        }
    };
    // Before anything else: std's hash maps seed themselves from the same source and
    // abort without a clear word if it fails.
    if let Err(e) = crate::rand::Rng::new() {
        eprintln!(
            "dproxy: error: cannot read random numbers from the kernel ({e}); refusing to start"
        );
        return 1;
    }
    let cfg = match build_config(&a) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                eprintln!("dproxy: error: {e}");
            }
            return 1;
        }
    };
    if a.check {
        let who = crate::privs::RunAs::configured(cfg.user.as_deref());
        for w in crate::file_access::access_warnings(&cfg, &who) {
            log::warn!("{w}");
        }
        println!("configuration ok");
        return 0;
    }
    log::set_max_level(cfg.log_level);
    log::info!("dproxy {} starting", env!("CARGO_PKG_VERSION"));
    let (user, chroot_dir, persist) = (
        cfg.user.clone(),
        cfg.chroot.clone(),
        cfg.persist_file.clone(),
    );
    let target = match crate::privs::resolve(user.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            log::error!("cannot drop privileges: {e}; exiting");
            return 1;
        }
    };
    for w in crate::file_access::access_warnings(&cfg, &crate::privs::RunAs::of(target.as_ref())) {
        log::warn!("{w}");
    }
    let mut server = match crate::server::Server::new(cfg, a.overrides()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    if let Err(e) = crate::privs::drop_privileges(target, chroot_dir.as_deref(), persist.as_deref())
    {
        log::error!("cannot drop privileges: {e}; exiting");
        return 1;
    }
    match server.run() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("event loop: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Command, String> {
        parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags() {
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        let Ok(Command::Run(a)) = p(&[
            "-c",
            "/etc/config/dproxy",
            "-l",
            "127.0.0.1",
            "-l",
            "[::1]:53",
            "-u",
            "192.0.2.1#5300",
            "-v",
            "--check-config",
        ]) else {
            panic!("should parse")
        };
        assert_eq!(a.config, Some(PathBuf::from("/etc/config/dproxy")));
        assert_eq!(
            a.listen,
            vec![
                "127.0.0.1:1296".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(a.servers, vec!["192.0.2.1:5300".parse().unwrap()]);
        assert!(a.verbose && a.check && !a.quiet);
    }

    #[test]
    fn mistakes() {
        assert!(p(&["-c"]).is_err());
        assert!(p(&["-l", "nowhere"]).is_err());
        assert!(p(&["--frobnicate"]).is_err());
        assert!(p(&["-v", "-q"]).is_err());
    }
}
