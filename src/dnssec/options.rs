//! The DNSSEC options of the config file (full build): `option dnssec`,
//! `option dnssec_check_unsigned`, `option trust_anchor_file`, `option dnssec_sha1`.
//! config.rs hands each one here by name and reports the error under it.

use super::anchors::{self, Anchor};

/// The option names, for config.rs to route here.
pub const NAMES: [&str; 4] = [
    "dnssec",
    "dnssec_check_unsigned",
    "trust_anchor_file",
    "dnssec_sha1",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnssecOptions {
    /// Validate answers (default off).
    pub enabled: bool,
    /// An unsigned answer must be proven unsigned by a denial of DS (default on).
    pub check_unsigned: bool,
    /// DS-form trust anchors; by default the root anchors the package installs.
    pub trust_anchor_file: String,
    /// Treat RSASHA1 (algorithms 5 and 7) as secure (default off: insecure, RFC 9905).
    pub sha1: bool,
    /// The anchors read from `trust_anchor_file` once every option is known (only
    /// when `enabled`).
    pub anchors: Vec<Anchor>,
}

impl Default for DnssecOptions {
    fn default() -> Self {
        DnssecOptions {
            enabled: false,
            check_unsigned: true,
            trust_anchor_file: anchors::DEFAULT_FILE.into(),
            sha1: false,
            anchors: Vec::new(),
        }
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (0/1, yes/no, on/off)")),
    }
}

impl DnssecOptions {
    /// Takes the value of the option `opt` (one of [`NAMES`]).
    pub fn set(&mut self, opt: &str, v: &str) -> Result<(), String> {
        match opt {
            "dnssec" => self.enabled = boolean(v)?,
            "dnssec_check_unsigned" => self.check_unsigned = boolean(v)?,
            "dnssec_sha1" => self.sha1 = boolean(v)?,
            "trust_anchor_file" => {
                let v = v.trim();
                if v.is_empty() {
                    return Err("is empty: name a file of DS trust anchors".into());
                }
                self.trust_anchor_file = v.into();
            }
            _ => return Err("not a DNSSEC option".into()),
        }
        Ok(())
    }

    /// With every option read: loads the anchors if validation is on. Returns the
    /// problems, each with the option it belongs to.
    pub fn finish(&mut self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        if self.enabled {
            match anchors::load(&self.trust_anchor_file) {
                Ok(a) => self.anchors = a,
                Err(e) => errs.push(("trust_anchor_file", e)),
            }
        }
        errs
    }
}
