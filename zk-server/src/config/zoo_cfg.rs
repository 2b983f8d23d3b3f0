//! The `zoo.cfg` format: `key=value` lines, `#` comments.

use std::path::PathBuf;

use thiserror::Error;

use super::{FourLetterWhitelist, ServerConfig};

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `key=value`.
    #[error("line {line}: expected key=value, found {text:?}")]
    Syntax {
        /// Line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value does not fit its key.
    #[error("line {line}: invalid value {value:?} for {key}: {reason}")]
    Value {
        /// Line number.
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A required key is missing.
    #[error("{0} is required")]
    Missing(&'static str),
}

/// Parses `zoo.cfg` text. Returns the configuration and warnings about keys it ignores.
pub fn parse_zoo_cfg(text: &str) -> Result<(ServerConfig, Vec<String>), ConfigError> {
    let mut config = ServerConfig::new(PathBuf::new());
    let mut data_dir_set = false;
    let mut warnings = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(ConfigError::Syntax {
                line,
                text: raw.to_owned(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        let bad = |reason: &str| ConfigError::Value {
            line,
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        fn num<T: std::str::FromStr>(value: &str) -> Option<T> {
            value.parse().ok()
        }
        match key {
            "tickTime" => {
                config.tick_time_ms = num(value)
                    .filter(|t| *t > 0)
                    .ok_or_else(|| bad("a positive number of ms"))?
            }
            "dataDir" => {
                config.data_dir = PathBuf::from(value);
                data_dir_set = true;
            }
            "dataLogDir" => config.data_log_dir = Some(PathBuf::from(value)),
            "clientPort" => config.client_port = num(value).ok_or_else(|| bad("a port number"))?,
            "clientPortAddress" => {
                config.client_port_address = num(value).ok_or_else(|| bad("an IP address"))?
            }
            "maxClientCnxns" => {
                config.max_client_cnxns = num(value).ok_or_else(|| bad("a number"))?
            }
            "minSessionTimeout" => {
                config.min_session_timeout_ms =
                    Some(num(value).ok_or_else(|| bad("a number of ms"))?)
            }
            "maxSessionTimeout" => {
                config.max_session_timeout_ms =
                    Some(num(value).ok_or_else(|| bad("a number of ms"))?)
            }
            "snapCount" => {
                config.snap_count = num(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number"))?
            }
            "autopurge.snapRetainCount" => {
                let n: usize = num(value).ok_or_else(|| bad("a number"))?;
                config.snap_retain_count = n.max(3);
            }
            "autopurge.purgeInterval" => {
                config.purge_interval_hours = num(value).ok_or_else(|| bad("a number of hours"))?
            }
            "4lw.commands.whitelist" => {
                config.four_letter_words = if value == "*" {
                    FourLetterWhitelist::All
                } else {
                    FourLetterWhitelist::Only(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|w| !w.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
            }
            "DigestAuthenticationProvider.superDigest"
            | "zookeeper.DigestAuthenticationProvider.superDigest"
            | "superDigest" => {
                if value.split(':').count() != 2 {
                    return Err(bad("user:BASE64 digest"));
                }
                config.super_digest = Some(value.to_owned());
            }
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                config.extended_types = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "znode.container.checkIntervalMs" => {
                config.container_check_interval_ms = num(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number of ms"))?
            }
            "znode.container.maxPerMinute" => {
                config.container_max_per_minute = num(value).ok_or_else(|| bad("a number"))?
            }
            "znode.container.maxNeverUsedIntervalMs" => {
                config.container_max_never_used_ms =
                    num(value).ok_or_else(|| bad("a number of ms"))?
            }
            "admin.enableServer"
            | "admin.serverPort"
            | "preAllocSize"
            | "globalOutstandingLimit" => {
                warnings.push(format!("line {line}: {key} is accepted but has no effect"));
            }
            _ => warnings.push(format!("line {line}: unknown key {key} ignored")),
        }
    }
    if !data_dir_set {
        return Err(ConfigError::Missing("dataDir"));
    }
    if let (Some(min), Some(max)) = (config.min_session_timeout_ms, config.max_session_timeout_ms) {
        if min > max {
            return Err(ConfigError::Value {
                line: 0,
                key: "minSessionTimeout".into(),
                value: min.to_string(),
                reason: format!("must not exceed maxSessionTimeout ({max})"),
            });
        }
    }
    Ok((config, warnings))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apache_keys() {
        let text = "# comment\ntickTime=2000\ndataDir=/tmp/zk\nclientPort=2191\nclientPortAddress=127.0.0.1\n\
                    maxClientCnxns=0\nsnapCount=1000\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=1\n\
                    4lw.commands.whitelist=ruok, srvr,mntr\nextendedTypesEnabled=true\nadmin.enableServer=false\nfoo=bar\n";
        let (config, warnings) = parse_zoo_cfg(text).unwrap();
        assert_eq!(config.tick_time_ms, 2000);
        assert_eq!(config.client_port, 2191);
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(config.snap_count, 1000);
        assert_eq!(config.snap_retain_count, 5);
        assert!(config.four_letter_words.allows("mntr"));
        assert!(!config.four_letter_words.allows("dump"));
        assert!(config.extended_types);
        assert_eq!(config.min_session_timeout(), 4000);
        assert_eq!(config.max_session_timeout(), 40_000);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].contains("foo"));
    }

    #[test]
    fn bad_values_are_errors() {
        for text in [
            "dataDir=/x\ntickTime=abc",
            "dataDir=/x\nclientPort=70000",
            "tickTime=2000",
            "dataDir=/x\nnonsense",
        ] {
            assert!(parse_zoo_cfg(text).is_err(), "{text}");
        }
        let err = parse_zoo_cfg("dataDir=/x\nclientPort=x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clientPort") && err.contains("line 2"),
            "{err}"
        );
    }
}
