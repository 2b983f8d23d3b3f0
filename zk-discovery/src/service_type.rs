//! [`ServiceType`]: how long a registration lives, hence which znode kind holds it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a registration, Curator's `ServiceType`. It decides the create mode of the
/// instance's znode:
///
/// | variant | JSON | znode |
/// |---|---|---|
/// | [`Dynamic`](Self::Dynamic) (default) | `"DYNAMIC"` | EPHEMERAL |
/// | [`DynamicSequential`](Self::DynamicSequential) | `"DYNAMIC_SEQUENTIAL"` | EPHEMERAL_SEQUENTIAL, protected |
/// | [`Static`](Self::Static) | `"STATIC"` | PERSISTENT |
/// | [`Permanent`](Self::Permanent) | `"PERMANENT"` | PERSISTENT |
///
/// Curator's `ServiceDiscoveryImpl` treats `Static` and `Permanent` alike: both are PERSISTENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// Lives as long as the registering session: an EPHEMERAL znode.
    #[default]
    Dynamic,
    /// Outlives the registering session: a PERSISTENT znode.
    Static,
    /// Outlives the registering session: a PERSISTENT znode (same handling as `Static`).
    Permanent,
    /// Like [`Dynamic`](Self::Dynamic), but ZooKeeper appends a sequence number to the node
    /// name: an EPHEMERAL_SEQUENTIAL znode, created in protected mode (`_c_<uuid>-<id>`
    /// then the number; Curator's has no prefix) so that a lost create reply leaves no
    /// second node.
    DynamicSequential,
}

impl ServiceType {
    /// Every variant, in Curator's declaration order.
    pub const ALL: [ServiceType; 4] = [
        ServiceType::Dynamic,
        ServiceType::Static,
        ServiceType::Permanent,
        ServiceType::DynamicSequential,
    ];

    /// Curator's `isDynamic()`: the registration dies with the session.
    pub const fn is_dynamic(self) -> bool {
        matches!(self, ServiceType::Dynamic | ServiceType::DynamicSequential)
    }

    /// Whether the instance's znode is EPHEMERAL (or EPHEMERAL_SEQUENTIAL); the same as
    /// [`is_dynamic`](Self::is_dynamic).
    pub const fn is_ephemeral(self) -> bool {
        self.is_dynamic()
    }

    /// Whether ZooKeeper appends a sequence number to the instance's node name.
    pub const fn is_sequential(self) -> bool {
        matches!(self, ServiceType::DynamicSequential)
    }

    /// The Java enum constant, as written in JSON: `"DYNAMIC"`, `"STATIC"`, `"PERMANENT"` or
    /// `"DYNAMIC_SEQUENTIAL"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "DYNAMIC",
            ServiceType::Static => "STATIC",
            ServiceType::Permanent => "PERMANENT",
            ServiceType::DynamicSequential => "DYNAMIC_SEQUENTIAL",
        }
    }

    /// The value of the `{service-type}` URI variable: the constant in lower case
    /// (`"dynamic_sequential"`), as Curator's `UriSpec` writes it.
    pub const fn uri_value(self) -> &'static str {
        match self {
            ServiceType::Dynamic => "dynamic",
            ServiceType::Static => "static",
            ServiceType::Permanent => "permanent",
            ServiceType::DynamicSequential => "dynamic_sequential",
        }
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_are_the_java_constants() {
        for t in ServiceType::ALL {
            let json = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            let back: ServiceType = serde_json::from_str(&json).unwrap_or(ServiceType::Static);
            assert_eq!(back, t);
            assert_eq!(t.uri_value(), t.as_str().to_lowercase());
        }
        assert!(serde_json::from_str::<ServiceType>("\"dynamic\"").is_err());
    }

    #[test]
    fn create_mode_flags() {
        let flags: Vec<(bool, bool)> = ServiceType::ALL
            .iter()
            .map(|t| (t.is_ephemeral(), t.is_sequential()))
            .collect();
        assert_eq!(
            flags,
            [(true, false), (false, false), (false, false), (true, true)]
        );
        assert_eq!(ServiceType::default(), ServiceType::Dynamic);
    }
}
