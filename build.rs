//! Embeds the build time (UNIX seconds) as DPROXY_BUILD_TIME: `SOURCE_DATE_EPOCH` when
//! set, so reproducible builds give identical binaries, the current time otherwise. The
//! full build uses it as the earliest plausible "now" before the clock is synced.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => panic!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"),
        },
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    println!("cargo:rustc-env=DPROXY_BUILD_TIME={secs}");
}
