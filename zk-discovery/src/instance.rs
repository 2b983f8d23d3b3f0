//! [`ServiceInstance`]: one registration of a service, and its builder.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::default_address;
use crate::{Error, Result, ServiceType, UriSpec};

/// One instance of a service, Curator's `ServiceInstance`: stored as JSON (see
/// [`JsonInstanceSerializer`](crate::JsonInstanceSerializer)) in the znode
/// `basePath/<name>/<id>`.
///
/// Build one with [`ServiceInstance::builder`], which fills in Curator's defaults and validates
/// the name and id. The fields are public so that instances read from ZooKeeper (which may have
/// been written by anyone) can be inspected as they are; [`validate`](Self::validate) checks an
/// instance built or modified by hand.
///
/// `T` is the user payload (any serde type; see the [`json`](crate::json) module for payloads
/// shared with Java processes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceInstance<T> {
    /// The service name: the parent node under the base path.
    pub name: String,
    /// The instance id, unique within the service: the instance's node name. Default: a random
    /// UUID.
    pub id: String,
    /// The host clients should connect to. Default: this host's primary IP
    /// ([`default_address`]). Curator writes `null` when it found no address.
    pub address: Option<String>,
    /// The plain port, if the instance listens on one.
    pub port: Option<u16>,
    /// The TLS port, if the instance listens on one. Its presence makes the `{scheme}` URI
    /// variable `https`.
    pub ssl_port: Option<u16>,
    /// Application data about the instance.
    pub payload: Option<T>,
    /// When the instance was registered, in milliseconds since the Unix epoch. Default: now.
    pub registration_time_utc: i64,
    /// How long the registration lives. Default: [`ServiceType::Dynamic`].
    pub service_type: ServiceType,
    /// A URI template for reaching the instance (see [`build_uri_spec`](Self::build_uri_spec)).
    pub uri_spec: Option<UriSpec>,
    /// Whether the instance accepts work. Default: `true`. Only written by the
    /// [`Full`](crate::SerializationMode::Full) serialization mode; instances stored without it
    /// read back as enabled.
    pub enabled: bool,
}

impl<T> ServiceInstance<T> {
    /// A builder for an instance of the service `name`, with Curator's defaults: a random UUID
    /// v4 id, this host's address ([`default_address`]), registration time = when
    /// [`build`](ServiceInstanceBuilder::build) is called, [`ServiceType::Dynamic`], enabled, no
    /// ports, payload or URI spec.
    ///
    /// ```
    /// use zk_discovery::{ServiceInstance, ServiceType};
    ///
    /// let instance = ServiceInstance::<()>::builder("payments")
    ///     .address("10.0.0.7")
    ///     .port(8080)
    ///     .build()?;
    /// assert_eq!(instance.id.len(), 36); // a UUID
    /// assert_eq!(instance.service_type, ServiceType::Dynamic);
    /// assert!(instance.enabled);
    /// # Ok::<(), zk_discovery::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> ServiceInstanceBuilder<T> {
        ServiceInstanceBuilder::new(name.into())
    }

    /// Checks that [`name`](Self::name) and [`id`](Self::id) can each be one ZooKeeper node name
    /// (non-empty, no `/`, not `.` or `..`, no character ZooKeeper forbids), so that the
    /// instance's path is exactly `basePath/<name>/<id>`. Curator does not check this and would
    /// silently create nested nodes for a name containing `/`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInstance`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        check_segment("name", &self.name)?;
        check_segment("id", &self.id)
    }

    /// The instance's [`uri_spec`](Self::uri_spec) filled in with its own fields, or `""` when
    /// it has none (Curator's `buildUriSpec()`). See [`UriSpec::build_for`].
    pub fn build_uri_spec(&self) -> String {
        self.build_uri_spec_with(&HashMap::new())
    }

    /// Like [`build_uri_spec`](Self::build_uri_spec), with extra variables that take precedence
    /// over the instance's own (Curator's `buildUriSpec(Map)`).
    pub fn build_uri_spec_with(&self, variables: &HashMap<String, String>) -> String {
        self.uri_spec
            .as_ref()
            .map_or_else(String::new, |spec| spec.build_for(self, variables))
    }
}

/// Builds a [`ServiceInstance`]; see [`ServiceInstance::builder`] for the defaults.
#[derive(Debug, Clone)]
#[must_use]
pub struct ServiceInstanceBuilder<T> {
    name: String,
    id: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    ssl_port: Option<u16>,
    payload: Option<T>,
    registration_time_utc: Option<i64>,
    service_type: ServiceType,
    uri_spec: Option<UriSpec>,
    enabled: bool,
}

impl<T> ServiceInstanceBuilder<T> {
    fn new(name: String) -> Self {
        ServiceInstanceBuilder {
            name,
            id: None,
            address: None,
            port: None,
            ssl_port: None,
            payload: None,
            registration_time_utc: None,
            service_type: ServiceType::Dynamic,
            uri_spec: None,
            enabled: true,
        }
    }

    /// Sets the instance id (default: a random UUID v4).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the address (default: [`default_address`]).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Sets the plain port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the TLS port.
    pub fn ssl_port(mut self, ssl_port: u16) -> Self {
        self.ssl_port = Some(ssl_port);
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: T) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Sets the registration time in milliseconds since the Unix epoch (default: now).
    pub fn registration_time_utc(mut self, millis: i64) -> Self {
        self.registration_time_utc = Some(millis);
        self
    }

    /// Sets the service type (default: [`ServiceType::Dynamic`]).
    pub fn service_type(mut self, service_type: ServiceType) -> Self {
        self.service_type = service_type;
        self
    }

    /// Sets the URI template.
    pub fn uri_spec(mut self, uri_spec: UriSpec) -> Self {
        self.uri_spec = Some(uri_spec);
        self
    }

    /// Sets whether the instance is enabled (default: `true`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The instance, with defaults for what was not set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInstance`] when the name or id is not a single ZooKeeper node name (see
    /// [`ServiceInstance::validate`]).
    pub fn build(self) -> Result<ServiceInstance<T>> {
        let instance = ServiceInstance {
            name: self.name,
            id: self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            address: Some(self.address.unwrap_or_else(default_address)),
            port: self.port,
            ssl_port: self.ssl_port,
            payload: self.payload,
            registration_time_utc: self.registration_time_utc.unwrap_or_else(now_millis),
            service_type: self.service_type,
            uri_spec: self.uri_spec,
            enabled: self.enabled,
        };
        instance.validate()?;
        Ok(instance)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks that `value` is one valid znode name.
fn check_segment(field: &'static str, value: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidInstance {
        field,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("must not be empty".to_owned()));
    }
    if value.contains('/') {
        return Err(invalid("must not contain '/'".to_owned()));
    }
    zk_proto::path::validate_path(&format!("/{value}")).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(name: &str, id: &str) -> Result<ServiceInstance<()>> {
        ServiceInstance::builder(name)
            .id(id)
            .address("10.0.0.1")
            .build()
    }

    #[test]
    fn defaults_follow_curator() -> Result<()> {
        let before = now_millis();
        let instance = ServiceInstance::<String>::builder("svc").build()?;
        let after = now_millis();
        assert_eq!(instance.name, "svc");
        let version = uuid::Uuid::parse_str(&instance.id).map(|id| id.get_version_num());
        assert_eq!(version.ok(), Some(4), "{}", instance.id);
        assert_eq!(instance.address, Some(default_address()));
        assert!((before..=after).contains(&instance.registration_time_utc));
        assert_eq!(instance.service_type, ServiceType::Dynamic);
        assert!(instance.enabled);
        assert_eq!(instance.port, None);
        assert_eq!(instance.ssl_port, None);
        assert_eq!(instance.payload, None);
        assert_eq!(instance.uri_spec, None);
        assert_eq!(instance.build_uri_spec(), "");
        let other = ServiceInstance::<String>::builder("svc").build()?;
        assert_ne!(instance.id, other.id);
        Ok(())
    }

    #[test]
    fn setters_override_defaults() -> Result<()> {
        let instance = ServiceInstance::builder("svc")
            .id("i-1")
            .address("host")
            .port(1)
            .ssl_port(2)
            .payload(7u32)
            .registration_time_utc(42)
            .service_type(ServiceType::Permanent)
            .uri_spec(UriSpec::parse("{scheme}://{address}:{ssl-port}")?)
            .enabled(false)
            .build()?;
        assert_eq!(
            instance,
            ServiceInstance {
                name: "svc".to_owned(),
                id: "i-1".to_owned(),
                address: Some("host".to_owned()),
                port: Some(1),
                ssl_port: Some(2),
                payload: Some(7),
                registration_time_utc: 42,
                service_type: ServiceType::Permanent,
                uri_spec: Some(UriSpec::parse("{scheme}://{address}:{ssl-port}")?),
                enabled: false,
            }
        );
        assert_eq!(instance.build_uri_spec(), "https://host:2");
        let vars = HashMap::from([("scheme".to_owned(), "wss".to_owned())]);
        assert_eq!(instance.build_uri_spec_with(&vars), "wss://host:2");
        Ok(())
    }

    #[test]
    fn names_and_ids_must_be_single_segments() {
        for bad in ["", "a/b", "/a", "a/", ".", "..", "a\u{0}b", "tab\there"] {
            let err = build(bad, "id").err();
            assert!(
                matches!(err, Some(Error::InvalidInstance { field: "name", .. })),
                "name {bad:?}: {err:?}"
            );
            let err = build("svc", bad).err();
            assert!(
                matches!(err, Some(Error::InvalidInstance { field: "id", .. })),
                "id {bad:?}: {err:?}"
            );
        }
        for good in ["svc", "a.b", "...", "with space", "ünï"] {
            assert!(build(good, good).is_ok(), "{good:?}");
        }
    }
}
