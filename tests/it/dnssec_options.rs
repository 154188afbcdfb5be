//! The DNSSEC options in the config file: the plain build refuses `option dnssec 1`
//! with one clear error; the full build parses every option, reports bad values under
//! the option's name, and reads the trust anchor file when validation is on.

use dproxy::config::{load, ConfigError, Loaded};

use crate::test_dir::TempDir;

fn load_conf(tag: &str, body: &str) -> Loaded {
    let dir = TempDir::new(&format!("dnssecopt-{tag}"));
    load(&dir.write("dproxy", format!("config dproxy 'main'\n{body}").as_bytes()))
}

fn errors(tag: &str, body: &str) -> Vec<ConfigError> {
    match load_conf(tag, body).config {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

fn has(errs: &[ConfigError], place: &str, text: &str) -> bool {
    errs.iter()
        .any(|e| e.place == place && e.problem.contains(text))
}

/// The anchor file the packages ship.
#[cfg(feature = "dnssec")]
fn shipped_anchors() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("files/root-anchors.ds")
}

#[test]
fn dnssec_off_loads_in_every_build() {
    for body in [
        "",
        "\toption dnssec '0'\n",
        "\toption dnssec '0'\n\toption dnssec_check_unsigned '0'\n\toption dnssec_sha1 '1'\n",
    ] {
        let l = load_conf("off", body);
        assert!(l.config.is_ok(), "{body}: {:?}", l.config.err());
        assert!(
            !l.warnings.iter().any(|w| w.place.contains("dnssec")),
            "{body}: {:?}",
            l.warnings
        );
    }
}

#[cfg(not(feature = "dnssec"))]
#[test]
fn plain_build_refuses_dnssec_with_one_clear_error() {
    for v in ["1", "yes", "on"] {
        let errs = errors("plain", &format!("\toption dnssec '{v}'\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(has(&errs, "main.dnssec", "needs dproxy-full"), "{errs:?}");
    }
    let errs = errors("plainbad", "\toption dnssec 'maybe'\n");
    assert!(has(&errs, "main.dnssec", "not a boolean"), "{errs:?}");
}

#[cfg(feature = "dnssec")]
#[test]
fn full_build_parses_the_options() {
    let l = load_conf("defaults", "");
    let d = l.config.unwrap().dnssec;
    assert!(!d.enabled && d.check_unsigned && !d.sha1);
    assert_eq!(d.trust_anchor_file, "/usr/share/dproxy/root-anchors.ds");
    assert!(d.anchors.is_empty());
    let body = format!(
        "\toption dnssec '1'\n\toption dnssec_check_unsigned 'no'\n\toption dnssec_sha1 'on'\n\
         \toption trust_anchor_file '{}'\n",
        shipped_anchors().display()
    );
    // Accepted, with the anchors read.
    let l = load_conf("on", &body);
    let on = l
        .config
        .expect("dnssec 1 with a good anchor file loads")
        .dnssec;
    assert!(on.enabled && !on.check_unsigned && on.sha1);
    assert_eq!(on.anchors.len(), 2);
    let mut d = dproxy::dnssec::options::DnssecOptions::default();
    for (o, v) in [
        ("dnssec", "1"),
        ("dnssec_check_unsigned", "no"),
        ("dnssec_sha1", "on"),
    ] {
        d.set(o, v).unwrap();
    }
    d.set("trust_anchor_file", shipped_anchors().to_str().unwrap())
        .unwrap();
    assert!(d.finish().is_empty());
    assert!(d.enabled && !d.check_unsigned && d.sha1);
    let tags: Vec<u16> = d.anchors.iter().map(|a| a.key_tag()).collect();
    assert_eq!(tags, [20326, 38696]);
}

#[cfg(feature = "dnssec")]
#[test]
fn full_build_names_the_option_in_errors() {
    for (body, place, text) in [
        ("\toption dnssec 'maybe'\n", "main.dnssec", "not a boolean"),
        (
            "\toption dnssec_check_unsigned '2'\n",
            "main.dnssec_check_unsigned",
            "not a boolean",
        ),
        (
            "\toption dnssec_sha1 'x'\n",
            "main.dnssec_sha1",
            "not a boolean",
        ),
        (
            "\toption trust_anchor_file ' '\n",
            "main.trust_anchor_file",
            "is empty",
        ),
        (
            "\toption dnssec '1'\n\toption trust_anchor_file '/nonexistent/anchors.ds'\n",
            "main.trust_anchor_file",
            "/nonexistent/anchors.ds: ",
        ),
    ] {
        let errs = errors("bad", body);
        assert!(has(&errs, place, text), "{body}: {errs:?}");
    }
    // A bad line in the anchor file: its path and line number.
    let dir = TempDir::new("dnssecopt-anchor");
    let f = dir.write("anchors.ds", b"; ok\n. IN DS 20326 8 2 E06D\n");
    let errs = errors(
        "badfile",
        &format!(
            "\toption dnssec '1'\n\toption trust_anchor_file '{}'\n",
            f.display()
        ),
    );
    assert!(
        has(
            &errs,
            "main.trust_anchor_file",
            "line 2: digest type 2 needs 32 bytes"
        ),
        "{errs:?}"
    );
    // The file is only read when validation is on.
    assert!(errors("offfile", "\toption trust_anchor_file '/nonexistent'\n").is_empty());
}
