//! [`UriSpec`]: Curator's URI template, e.g. `{scheme}://{address}:{port}`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, ServiceInstance};

/// Curator's URI template (`UriSpec`): literal text and `{variable}`s, filled in from a
/// [`ServiceInstance`] and caller-supplied variables.
///
/// # Template syntax (exactly Curator's)
///
/// * `{name}` is a variable; whitespace around the name is trimmed (`{ port }` = `{port}`).
/// * Everything else is literal text, kept as is.
/// * There is no escape character: a literal `{` or `}` is written with the variables `{[}`
///   and `{]}`, e.g. `{[}x{]}` builds `{x}`.
/// * A `{` inside a variable, a `}` without `{`, or an unclosed `{` is an error
///   ([`Error::InvalidUriSpec`]). `{}` is accepted and produces nothing.
///
/// # Variables
///
/// | variable | value |
/// |---|---|
/// | `scheme` | `https` if the instance has an `ssl_port`, else `http` (also without an instance) |
/// | `name`, `id`, `address` | the instance's fields |
/// | `port`, `ssl-port` | the instance's ports |
/// | `registration-time-utc` | the registration time in milliseconds |
/// | `service-type` | the service type in lower case (`dynamic`, `dynamic_sequential`, …) |
/// | `[`, `]` | `{`, `}` |
///
/// Caller-supplied variables take precedence over all of these. A variable that has no value —
/// an unknown name, an instance variable when building without an instance, or a field that is
/// unset (e.g. `{ssl-port}` without an SSL port) — builds to the empty string, as in Curator.
///
/// ```
/// use zk_discovery::{ServiceInstance, UriSpec};
///
/// let spec: UriSpec = "{scheme}://{address}:{port}/v1".parse()?;
/// let instance = ServiceInstance::<()>::builder("api")
///     .address("10.0.0.7")
///     .port(8080)
///     .uri_spec(spec)
///     .build()?;
/// assert_eq!(instance.build_uri_spec(), "http://10.0.0.7:8080/v1");
/// # Ok::<(), zk_discovery::Error>(())
/// ```
///
/// # JSON
///
/// Serialized as Jackson writes Curator's class:
/// `{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UriSpec {
    #[serde(default)]
    parts: Vec<UriPart>,
}

/// One piece of a [`UriSpec`]: literal text, or the name of a variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UriPart {
    /// The literal text, or the variable name.
    #[serde(default)]
    pub value: String,
    /// Whether [`value`](Self::value) names a variable.
    #[serde(default)]
    pub variable: bool,
}

impl UriPart {
    /// A literal piece of text.
    pub fn literal(text: impl Into<String>) -> Self {
        UriPart {
            value: text.into(),
            variable: false,
        }
    }

    /// A variable.
    pub fn variable(name: impl Into<String>) -> Self {
        UriPart {
            value: name.into(),
            variable: true,
        }
    }
}

/// The variable for `{`.
pub const FIELD_OPEN_BRACE: &str = "[";
/// The variable for `}`.
pub const FIELD_CLOSE_BRACE: &str = "]";
/// `http` or `https`.
pub const FIELD_SCHEME: &str = "scheme";
/// The instance's name.
pub const FIELD_NAME: &str = "name";
/// The instance's id.
pub const FIELD_ID: &str = "id";
/// The instance's address.
pub const FIELD_ADDRESS: &str = "address";
/// The instance's port.
pub const FIELD_PORT: &str = "port";
/// The instance's SSL port.
pub const FIELD_SSL_PORT: &str = "ssl-port";
/// The instance's registration time (ms since the epoch).
pub const FIELD_REGISTRATION_TIME_UTC: &str = "registration-time-utc";
/// The instance's service type, lower case.
pub const FIELD_SERVICE_TYPE: &str = "service-type";

impl UriSpec {
    /// An empty template (it builds to `""`); add parts with [`push`](Self::push).
    pub fn new() -> Self {
        UriSpec::default()
    }

    /// Parses a template; see the [type docs](Self) for the syntax.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUriSpec`] with Curator's message for a `{` inside a variable, a `}`
    /// without a `{`, or an unclosed `{`.
    pub fn parse(raw: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidUriSpec {
            spec: raw.to_owned(),
            reason,
        };
        let mut parts = Vec::new();
        let mut inside_variable = false;
        for token in tokens(raw) {
            match token {
                "{" => {
                    if inside_variable {
                        return Err(invalid(
                            "{ is not allowed inside of a variable specification",
                        ));
                    }
                    inside_variable = true;
                }
                "}" => {
                    if !inside_variable {
                        return Err(invalid("} must be preceded by {"));
                    }
                    inside_variable = false;
                }
                text if inside_variable => parts.push(UriPart::variable(java_trim(text))),
                text => parts.push(UriPart::literal(text)),
            }
        }
        if inside_variable {
            return Err(invalid("Final variable not closed - expected }"));
        }
        Ok(UriSpec { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[UriPart] {
        &self.parts
    }

    /// Appends a part.
    pub fn push(&mut self, part: UriPart) {
        self.parts.push(part);
    }

    /// Removes the first part equal to `part` (Curator's `remove`); returns whether one was
    /// found.
    pub fn remove(&mut self, part: &UriPart) -> bool {
        match self.parts.iter().position(|p| p == part) {
            Some(i) => {
                self.parts.remove(i);
                true
            }
            None => false,
        }
    }

    /// Builds the URI without an instance or extra variables: only `{scheme}` (= `http`),
    /// `{[}` and `{]}` have values.
    pub fn build(&self) -> String {
        self.build_with(&HashMap::new())
    }

    /// Builds the URI from `variables` alone (plus `{scheme}` = `http`, `{[}` and `{]}`).
    pub fn build_with(&self, variables: &HashMap<String, String>) -> String {
        self.render(|name| {
            variables
                .get(name)
                .cloned()
                .or_else(|| base_variable(name).map(str::to_owned))
        })
    }

    /// Builds the URI from `instance`'s fields and `variables`, which take precedence.
    pub fn build_for<T>(
        &self,
        instance: &ServiceInstance<T>,
        variables: &HashMap<String, String>,
    ) -> String {
        self.render(|name| {
            variables
                .get(name)
                .cloned()
                .or_else(|| instance_variable(instance, name))
                .or_else(|| base_variable(name).map(str::to_owned))
        })
    }

    fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if part.variable {
                if let Some(value) = lookup(&part.value) {
                    out.push_str(&value);
                }
            } else {
                out.push_str(&part.value);
            }
        }
        out
    }
}

/// Values that exist without an instance.
fn base_variable(name: &str) -> Option<&'static str> {
    match name {
        FIELD_OPEN_BRACE => Some("{"),
        FIELD_CLOSE_BRACE => Some("}"),
        FIELD_SCHEME => Some("http"),
        _ => None,
    }
}

/// Values taken from the instance; an unset field is `""` (Curator's `nullCheck`).
fn instance_variable<T>(instance: &ServiceInstance<T>, name: &str) -> Option<String> {
    let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
    Some(match name {
        FIELD_SCHEME if instance.ssl_port.is_some() => "https".to_owned(),
        FIELD_NAME => instance.name.clone(),
        FIELD_ID => instance.id.clone(),
        FIELD_ADDRESS => instance.address.clone().unwrap_or_default(),
        FIELD_PORT => port(instance.port),
        FIELD_SSL_PORT => port(instance.ssl_port),
        FIELD_REGISTRATION_TIME_UTC => instance.registration_time_utc.to_string(),
        FIELD_SERVICE_TYPE => instance.service_type.uri_value().to_owned(),
        _ => return None,
    })
}

/// Splits like Java's `new StringTokenizer(raw, "{}", true)`: each brace is a token, the text
/// between braces is a token, and empty tokens are never produced.
fn tokens(raw: &str) -> impl Iterator<Item = &str> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['{', '}']) {
            Some(0) => 1,
            Some(i) => i,
            None => rest.len(),
        };
        let (token, tail) = rest.split_at(end);
        rest = tail;
        Some(token)
    })
}

/// Java's `String.trim()`: strips characters up to U+0020 from both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

impl FromStr for UriSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        UriSpec::parse(s)
    }
}

/// Writes the template back in its source syntax (`{scheme}://{address}:{port}`). A literal
/// part containing a brace (possible only through [`UriSpec::push`]) is written as is and does
/// not parse back to the same parts.
impl fmt::Display for UriSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            if part.variable {
                write!(f, "{{{}}}", part.value)?;
            } else {
                f.write_str(&part.value)?;
            }
        }
        Ok(())
    }
}
