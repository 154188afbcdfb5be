//! The UCI config loader on arbitrary file contents: `load` must return (a config or a
//! list of problems) and never panic. The loader itself catches panics raised inside the
//! uci_rs parser, so only those are let through to its `catch_unwind`; a panic anywhere
//! else aborts as usual and is reported by libFuzzer.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Once, OnceLock};

use libfuzzer_sys::fuzz_target;

/// Was a known issue, fixed in bd15b40 (fuzz/regressions/README.md): uci_rs 0.1.2 loops
/// forever when the file ends inside a keyword line without a newline ("...\n\tlist",
/// "config dproxy", "\toption port"), so `load` (and `dproxy --check-config`, and a
/// SIGHUP reload) hangs at 100% CPU. While true, the harness appends the missing final
/// newline (the suggested fix in `load`) so that fuzzing goes on past the known hang.
/// False since `load` does that itself.
const ADD_FINAL_NEWLINE: bool = false;

static HOOK: Once = Once::new();
static PATH: OnceLock<PathBuf> = OnceLock::new();

fn install_hook() {
    HOOK.call_once(|| {
        // libfuzzer-sys' hook aborts on every panic; keep it for panics outside uci_rs.
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_uci = info
                .location()
                .is_some_and(|l| l.file().contains("uci_rs") || l.file().contains("uci-rs"));
            if !in_uci {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("dproxy-fuzz-config-{}.conf", std::process::id()))
    });
    let mut f = std::fs::File::create(path).expect("temp file");
    f.write_all(data).expect("write temp file");
    if ADD_FINAL_NEWLINE && !data.ends_with(b"\n") {
        f.write_all(b"\n").expect("write temp file");
    }
    drop(f);
    let loaded = dproxy::config::load(path);
    match loaded.config {
        Ok(cfg) => {
            // Whatever was accepted is usable: formatting it must not panic either.
            let _ = format!("{cfg:?}");
        }
        Err(problems) => assert!(!problems.is_empty(), "an error comes with its reasons"),
    }
    for w in &loaded.warnings {
        let _ = w.to_string();
    }
});
