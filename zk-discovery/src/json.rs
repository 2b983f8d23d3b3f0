//! JSON (de)serialization of [`ServiceInstance`]s, byte-compatible with Curator's
//! `JsonInstanceSerializer` (Jackson).
//!
//! # The format
//!
//! Fields in Jackson's order, `null`s written:
//!
//! ```text
//! {"name":"payments","id":"6d4e5121-…","address":"10.0.0.7","port":8005,"sslPort":null,
//!  "payload":…,"registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC",
//!  "uriSpec":{"parts":[{"value":"scheme","variable":true},…]}}
//! ```
//!
//! [`SerializationMode::Compatible`] (the default, as in Curator) stops there;
//! [`SerializationMode::Full`] appends `,"enabled":true|false`. Reading accepts both, like
//! Curator: unknown fields are ignored, a missing `enabled` means enabled, missing or `null`
//! fields take Curator's defaults (`""` for name and id, `None`, 0, `DYNAMIC`; a `null`
//! `enabled` is `false`, as Jackson reads a `null` primitive).
//!
//! # Payloads shared with Java
//!
//! Curator writes the payload with Jackson's `@JsonTypeInfo(use = CLASS)`: a Java object or map
//! payload starts with its class name, `{"@class":"com.example.Payload","id":…}`, while a
//! `String` payload is a plain JSON string.
//!
//! * **Reading** Java payloads: any serde struct works, since serde ignores the unknown
//!   `"@class"` field (unless the struct is `#[serde(deny_unknown_fields)]`); a string payload
//!   reads as `String`; [`serde_json::Value`] reads anything.
//! * **Writing** payloads for Java readers: Curator *requires* `"@class"` on an object payload
//!   (without it Jackson builds a map, and `JsonInstanceSerializer` fails with a
//!   `ClassCastException`). Wrap the payload in [`JavaPayload`], which writes `"@class"` first
//!   and then the fields of the wrapped value.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use zk_discovery::{JavaPayload, JsonInstanceSerializer, ServiceInstance};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Payload {
//!     id: String,
//! }
//!
//! let instance = ServiceInstance::builder("payments")
//!     .id("i-1")
//!     .address("host")
//!     .port(8005)
//!     .registration_time_utc(1610116500446)
//!     .payload(JavaPayload::new("com.example.Payload", Payload { id: "application-1".into() }))
//!     .build()?;
//! let bytes = JsonInstanceSerializer::default().serialize(&instance)?;
//! assert_eq!(
//!     String::from_utf8_lossy(&bytes),
//!     r#"{"name":"payments","id":"i-1","address":"host","port":8005,"sslPort":null,"payload":{"@class":"com.example.Payload","id":"application-1"},"registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC","uriSpec":null}"#
//! );
//!
//! // A process that does not care about the Java class reads the bare struct.
//! let read = JsonInstanceSerializer::default().deserialize::<Payload>(&bytes)?;
//! assert_eq!(read.payload, Some(Payload { id: "application-1".into() }));
//! # Ok::<(), zk_discovery::Error>(())
//! ```
//!
//! [`ServiceInstance`] also implements serde's `Serialize` (the [`Full`](SerializationMode::Full)
//! shape) and `Deserialize` (the same lenient reading), for embedding instances in other data.

use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter};

use crate::{Error, Result, ServiceInstance, ServiceType, UriSpec};

/// Turns service instances into znode data and back (Curator's `InstanceSerializer`). The
/// discovery layer holds one per service; [`JsonInstanceSerializer`] is the standard one.
pub trait InstanceSerializer<T>: Send + Sync {
    /// The bytes to store for `instance`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when the instance cannot be encoded.
    fn serialize(&self, instance: &ServiceInstance<T>) -> Result<Vec<u8>>;

    /// The instance stored as `bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] when the bytes are not an instance with a `T` payload.
    fn deserialize(&self, bytes: &[u8]) -> Result<ServiceInstance<T>>;
}

/// Which fields [`JsonInstanceSerializer`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SerializationMode {
    /// Curator's default (`compatibleSerializationMode = true`): `enabled` is not written, so
    /// clients older than CURATOR-275 can read the data; every reader sees the instance as
    /// enabled.
    #[default]
    Compatible,
    /// `enabled` is written as the last field.
    Full,
}

/// Curator's `JsonInstanceSerializer`: JSON in Jackson's exact shape (see the
/// [module docs](self)). The default is [`SerializationMode::Compatible`], as in Curator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct JsonInstanceSerializer {
    mode: SerializationMode,
}

impl JsonInstanceSerializer {
    /// A serializer writing in `mode`.
    pub const fn new(mode: SerializationMode) -> Self {
        JsonInstanceSerializer { mode }
    }

    /// The mode this serializer writes in.
    pub const fn mode(&self) -> SerializationMode {
        self.mode
    }

    /// `instance` as JSON bytes, byte-for-byte what Curator's serializer writes for the same
    /// instance (given a payload that serializes like Jackson does).
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when the payload's `Serialize` implementation fails (e.g. a map
    /// with non-string keys).
    pub fn serialize<T: Serialize>(&self, instance: &ServiceInstance<T>) -> Result<Vec<u8>> {
        let wire = WireOut::new(instance, self.mode);
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, JacksonFormatter);
        wire.serialize(&mut serializer)
            .map_err(|e| Error::Serialize(e.to_string()))?;
        Ok(out)
    }

    /// The instance stored as `bytes`, written by Curator or by this crate in either mode.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] (with serde_json's line and column) when `bytes` are not JSON, a
    /// field has the wrong type (e.g. a port outside `0..=65535`, an unknown service type), or
    /// the payload is not a `T` — the counterpart of Curator's `ClassCastException`.
    pub fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<ServiceInstance<T>> {
        serde_json::from_slice::<WireIn<T>>(bytes)
            .map(WireIn::into_instance)
            .map_err(|e| Error::Deserialize(e.to_string()))
    }
}

impl<T> InstanceSerializer<T> for JsonInstanceSerializer
where
    T: Serialize + DeserializeOwned,
{
    fn serialize(&self, instance: &ServiceInstance<T>) -> Result<Vec<u8>> {
        JsonInstanceSerializer::serialize(self, instance)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<ServiceInstance<T>> {
        JsonInstanceSerializer::deserialize(self, bytes)
    }
}

/// A payload written the way Jackson writes a Java object under `@JsonTypeInfo(use = CLASS)`:
/// `{"@class":"<class>", …the fields of value…}`, so Curator processes can read it as
/// `<class>`. Reading accepts a missing `"@class"` (then [`class`](Self::class) is empty).
///
/// `T` must serialize as a JSON object (a struct or a map); it is flattened into the payload
/// object with `#[serde(flatten)]`, so it cannot use `#[serde(deny_unknown_fields)]`.
///
/// ```
/// use std::collections::BTreeMap;
/// use zk_discovery::JavaPayload;
///
/// let payload = JavaPayload::new("java.util.HashMap", BTreeMap::from([("zone", "eu-1")]));
/// let json = serde_json::to_string(&payload).unwrap_or_default();
/// assert_eq!(json, r#"{"@class":"java.util.HashMap","zone":"eu-1"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JavaPayload<T> {
    /// The fully qualified Java class name, e.g. `com.example.Payload`.
    #[serde(rename = "@class", default)]
    pub class: String,
    /// The payload's fields.
    #[serde(flatten)]
    pub value: T,
}

impl<T> JavaPayload<T> {
    /// `value`, tagged as the Java class `class`.
    pub fn new(class: impl Into<String>, value: T) -> Self {
        JavaPayload {
            class: class.into(),
            value,
        }
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

/// Writes the [`SerializationMode::Full`] shape (with `enabled`).
impl<T: Serialize> Serialize for ServiceInstance<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        WireOut::new(self, SerializationMode::Full).serialize(serializer)
    }
}

/// Reads either shape, leniently (see the [module docs](self)).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for ServiceInstance<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        WireIn::deserialize(deserializer).map(WireIn::into_instance)
    }
}

/// The instance as Jackson writes it: declaration order, `null`s included.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOut<'a, T> {
    name: &'a str,
    id: &'a str,
    address: Option<&'a str>,
    port: Option<u16>,
    ssl_port: Option<u16>,
    payload: Option<&'a T>,
    #[serde(rename = "registrationTimeUTC")]
    registration_time_utc: i64,
    service_type: ServiceType,
    uri_spec: Option<&'a UriSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
}

impl<'a, T> WireOut<'a, T> {
    fn new(instance: &'a ServiceInstance<T>, mode: SerializationMode) -> Self {
        WireOut {
            name: &instance.name,
            id: &instance.id,
            address: instance.address.as_deref(),
            port: instance.port,
            ssl_port: instance.ssl_port,
            payload: instance.payload.as_ref(),
            registration_time_utc: instance.registration_time_utc,
            service_type: instance.service_type,
            uri_spec: instance.uri_spec.as_ref(),
            enabled: match mode {
                SerializationMode::Compatible => None,
                SerializationMode::Full => Some(instance.enabled),
            },
        }
    }
}

/// The instance as Jackson reads it into Curator's class: missing fields keep the defaults of
/// `ServiceInstance()`, unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireIn<T> {
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    id: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default, deserialize_with = "java_port")]
    port: Option<u16>,
    #[serde(default, deserialize_with = "java_port")]
    ssl_port: Option<u16>,
    payload: Option<T>,
    #[serde(
        rename = "registrationTimeUTC",
        default,
        deserialize_with = "null_as_default"
    )]
    registration_time_utc: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    service_type: ServiceType,
    #[serde(default)]
    uri_spec: Option<UriSpec>,
    #[serde(default = "enabled_by_default", deserialize_with = "null_as_default")]
    enabled: bool,
}

impl<T> WireIn<T> {
    fn into_instance(self) -> ServiceInstance<T> {
        ServiceInstance {
            name: self.name,
            id: self.id,
            address: self.address,
            port: self.port,
            ssl_port: self.ssl_port,
            payload: self.payload,
            registration_time_utc: self.registration_time_utc,
            service_type: self.service_type,
            uri_spec: self.uri_spec,
            enabled: self.enabled,
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// A present `null` reads as the type's default (Jackson leaves the field at its default for
/// objects and reads `null` primitives as `0`/`false`).
fn null_as_default<'de, D, V>(deserializer: D) -> std::result::Result<V, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de> + Default,
{
    Option::<V>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A port as Java stores it (an `Integer`, any int value): one outside 0-65535 (e.g. -1 for
/// "none") reads as no port, rather than making the whole instance unreadable.
fn java_port<'de, D>(deserializer: D) -> std::result::Result<Option<u16>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<i32>::deserialize(deserializer)?.and_then(|p| u16::try_from(p).ok()))
}

/// serde_json's compact output, except that control characters without a short escape are
/// written `\u001F` with upper-case hex digits, as Jackson does (serde_json writes `\u001f`).
struct JacksonFormatter;

impl Formatter for JacksonFormatter {
    fn write_char_escape<W>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let short = match char_escape {
            CharEscape::Quote => b'"',
            CharEscape::ReverseSolidus => b'\\',
            CharEscape::Solidus => b'/',
            CharEscape::Backspace => b'b',
            CharEscape::FormFeed => b'f',
            CharEscape::LineFeed => b'n',
            CharEscape::CarriageReturn => b'r',
            CharEscape::Tab => b't',
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let hex = |nibble: u8| HEX.get(usize::from(nibble & 0xF)).copied().unwrap_or(b'0');
                return writer.write_all(&[b'\\', b'u', b'0', b'0', hex(byte >> 4), hex(byte)]);
            }
        };
        writer.write_all(&[b'\\', short])
    }
}
