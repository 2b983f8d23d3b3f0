//! The stored JSON, byte for byte as Curator's `JsonInstanceSerializer` (Jackson) writes it.
//!
//! The expected strings are written by hand from Curator's format: fields in the declaration
//! order of `ServiceInstance` (name, id, address, port, sslPort, payload, registrationTimeUTC,
//! serviceType, uriSpec, then enabled in full mode), `null`s written, a POJO payload starting
//! with `"@class"`, a `String` payload as a plain JSON string.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zk_discovery::{
    Error, InstanceSerializer, JavaPayload, JsonInstanceSerializer, SerializationMode,
    ServiceInstance, ServiceType, UriPart, UriSpec,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const COMPATIBLE: JsonInstanceSerializer =
    JsonInstanceSerializer::new(SerializationMode::Compatible);
const FULL: JsonInstanceSerializer = JsonInstanceSerializer::new(SerializationMode::Full);

const ID: &str = "6d4e5121-0e2e-4b8f-9d1c-3f0a7b2c9e11";

const URI_SPEC_JSON: &str = r#"{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true},{"value":":","variable":false},{"value":"port","variable":true}]}"#;

/// The instance of CURATOR.md §3 as a Java (Curator 5, Jackson 2) process stores it.
fn curator_md_json() -> String {
    format!(
        r#"{{"name":"cloud-provider-payment","id":"{ID}","address":"host","port":8005,"sslPort":null,"payload":{{"@class":"com.example.Payload","id":"application-1","metadata":{{}}}},"registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC","uriSpec":{URI_SPEC_JSON}}}"#
    )
}

/// The Java payload class `com.example.Payload`, as a Rust process would model it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payload {
    id: String,
    metadata: BTreeMap<String, String>,
}

fn payload() -> Payload {
    Payload {
        id: "application-1".to_owned(),
        metadata: BTreeMap::new(),
    }
}

fn default_uri_spec() -> UriSpec {
    let mut spec = UriSpec::new();
    spec.push(UriPart::variable("scheme"));
    spec.push(UriPart::literal("://"));
    spec.push(UriPart::variable("address"));
    spec.push(UriPart::literal(":"));
    spec.push(UriPart::variable("port"));
    spec
}

/// The instance of CURATOR.md §3 with payload `payload`.
fn instance<T>(payload: Option<T>) -> ServiceInstance<T> {
    ServiceInstance {
        name: "cloud-provider-payment".to_owned(),
        id: ID.to_owned(),
        address: Some("host".to_owned()),
        port: Some(8005),
        ssl_port: None,
        payload,
        registration_time_utc: 1610116500446,
        service_type: ServiceType::Dynamic,
        uri_spec: Some(default_uri_spec()),
        enabled: true,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn reads_the_curator_md_instance_with_a_pojo_payload() -> TestResult {
    let json = curator_md_json();
    // A plain struct ignores "@class".
    let read = COMPATIBLE.deserialize::<Payload>(json.as_bytes())?;
    assert_eq!(read, instance(Some(payload())));
    assert_eq!(
        read.uri_spec.as_ref().map(ToString::to_string).as_deref(),
        Some("{scheme}://{address}:{port}")
    );
    assert_eq!(read.build_uri_spec(), "http://host:8005");
    // JavaPayload keeps it.
    let read = COMPATIBLE.deserialize::<JavaPayload<Payload>>(json.as_bytes())?;
    let java = read.payload.as_ref().ok_or("no payload")?;
    assert_eq!(java.class, "com.example.Payload");
    assert_eq!(java.value, payload());
    // serde_json::Value keeps everything.
    let read = COMPATIBLE.deserialize::<serde_json::Value>(json.as_bytes())?;
    assert_eq!(
        read.payload,
        Some(
            serde_json::json!({"@class": "com.example.Payload", "id": "application-1", "metadata": {}})
        )
    );
    Ok(())
}

#[test]
fn writes_the_curator_md_instance_byte_for_byte() -> TestResult {
    let java = instance(Some(JavaPayload::new("com.example.Payload", payload())));
    let expected = curator_md_json();
    assert_eq!(text(&COMPATIBLE.serialize(&java)?), expected);
    // Full mode appends "enabled" and nothing else.
    let full_expected = format!("{},\"enabled\":true}}", &expected[..expected.len() - 1]);
    assert_eq!(text(&FULL.serialize(&java)?), full_expected);
    // And reading our output gives the same instance back, in both modes.
    assert_eq!(
        COMPATIBLE.deserialize::<JavaPayload<Payload>>(expected.as_bytes())?,
        java
    );
    assert_eq!(
        FULL.deserialize::<JavaPayload<Payload>>(full_expected.as_bytes())?,
        java
    );
    Ok(())
}

#[test]
fn string_payload_is_a_plain_json_string() -> TestResult {
    let expected = format!(
        r#"{{"name":"cloud-provider-payment","id":"{ID}","address":"host","port":8005,"sslPort":null,"payload":"eu-west-1","registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC","uriSpec":{URI_SPEC_JSON}}}"#
    );
    let instance = instance(Some("eu-west-1".to_owned()));
    assert_eq!(text(&COMPATIBLE.serialize(&instance)?), expected);
    assert_eq!(
        COMPATIBLE.deserialize::<String>(expected.as_bytes())?,
        instance
    );
    // The wrong payload type is an error, not a panic (Curator: ClassCastException).
    let err = COMPATIBLE.deserialize::<Payload>(expected.as_bytes()).err();
    assert!(matches!(err, Some(Error::Deserialize(_))), "{err:?}");
    Ok(())
}

#[test]
fn no_payload_is_null_and_absent_reads_as_none() -> TestResult {
    let expected = format!(
        r#"{{"name":"cloud-provider-payment","id":"{ID}","address":"host","port":8005,"sslPort":null,"payload":null,"registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC","uriSpec":{URI_SPEC_JSON}}}"#
    );
    let none = instance::<Payload>(None);
    assert_eq!(text(&COMPATIBLE.serialize(&none)?), expected);
    assert_eq!(
        COMPATIBLE.deserialize::<Payload>(expected.as_bytes())?,
        none
    );
    let absent = expected.replace(r#""payload":null,"#, "");
    assert_ne!(absent, expected);
    assert_eq!(COMPATIBLE.deserialize::<Payload>(absent.as_bytes())?, none);
    Ok(())
}

#[test]
fn ssl_port_type_and_missing_uri_spec() -> TestResult {
    let mut instance = instance(Some("p".to_owned()));
    instance.ssl_port = Some(8443);
    instance.port = None;
    instance.service_type = ServiceType::DynamicSequential;
    instance.uri_spec = None;
    let expected = format!(
        r#"{{"name":"cloud-provider-payment","id":"{ID}","address":"host","port":null,"sslPort":8443,"payload":"p","registrationTimeUTC":1610116500446,"serviceType":"DYNAMIC_SEQUENTIAL","uriSpec":null}}"#
    );
    assert_eq!(text(&COMPATIBLE.serialize(&instance)?), expected);
    assert_eq!(
        COMPATIBLE.deserialize::<String>(expected.as_bytes())?,
        instance
    );
    for t in ServiceType::ALL {
        instance.service_type = t;
        let json = text(&COMPATIBLE.serialize(&instance)?);
        assert!(
            json.contains(&format!(r#""serviceType":"{}""#, t.as_str())),
            "{json}"
        );
        assert_eq!(COMPATIBLE.deserialize::<String>(json.as_bytes())?, instance);
    }
    Ok(())
}

#[test]
fn enabled_present_true_false_and_absent() -> TestResult {
    let base = curator_md_json();
    let with = |enabled: &str| format!("{},\"enabled\":{enabled}}}", &base[..base.len() - 1]);

    let absent = FULL.deserialize::<Payload>(base.as_bytes())?;
    assert!(absent.enabled, "missing enabled = true");
    assert!(
        FULL.deserialize::<Payload>(with("true").as_bytes())?
            .enabled
    );
    let disabled = COMPATIBLE.deserialize::<Payload>(with("false").as_bytes())?;
    assert!(!disabled.enabled, "both modes read enabled");

    // Full mode writes a disabled instance as disabled; compatible mode drops the field, so
    // the instance reads back enabled (Curator's testBackwardCompatibility).
    let java = {
        let mut i = instance(Some(JavaPayload::new("com.example.Payload", payload())));
        i.enabled = false;
        i
    };
    let full = FULL.serialize(&java)?;
    assert_eq!(text(&full), with("false"));
    assert_eq!(FULL.deserialize::<JavaPayload<Payload>>(&full)?, java);
    let compatible = COMPATIBLE.serialize(&java)?;
    assert_eq!(text(&compatible), base);
    assert!(
        COMPATIBLE
            .deserialize::<JavaPayload<Payload>>(&compatible)?
            .enabled
    );
    Ok(())
}

#[test]
fn unknown_fields_are_ignored() -> TestResult {
    // Like Curator's testFutureChanges: fields added by a newer writer, anywhere.
    let json = r#"{"new0":[1,{"x":null}],"name":"svc","id":"i","address":"a","port":1,"sslPort":null,"payload":"hey","registrationTimeUTC":0,"serviceType":"STATIC","uriSpec":{"parts":[{"value":"id","variable":true,"extra":1}],"more":true},"enabled":false,"new1":"what","new2":10101,"new3":1610116500446,"new4":"http://hey"}"#;
    let read = COMPATIBLE.deserialize::<String>(json.as_bytes())?;
    assert_eq!(read.name, "svc");
    assert_eq!(read.payload.as_deref(), Some("hey"));
    assert_eq!(read.service_type, ServiceType::Static);
    assert!(!read.enabled);
    assert_eq!(read.build_uri_spec(), "i");
    Ok(())
}

#[test]
fn empty_object_takes_curators_defaults() -> TestResult {
    // Curator's testNoEnabledState reads "{}" through ServiceInstance's no-arg constructor.
    let read = COMPATIBLE.deserialize::<String>(b"{}")?;
    let expected: ServiceInstance<String> = ServiceInstance {
        name: String::new(),
        id: String::new(),
        address: None,
        port: None,
        ssl_port: None,
        payload: None,
        registration_time_utc: 0,
        service_type: ServiceType::Dynamic,
        uri_spec: None,
        enabled: true,
    };
    assert_eq!(read, expected);
    // Explicit nulls: objects keep their defaults, primitives read as 0 / false (Jackson).
    let nulls = br#"{"name":null,"id":null,"address":null,"port":null,"sslPort":null,"payload":null,"registrationTimeUTC":null,"serviceType":null,"uriSpec":null,"enabled":null}"#;
    let read = COMPATIBLE.deserialize::<String>(nulls)?;
    assert_eq!(
        read,
        ServiceInstance {
            enabled: false,
            ..expected
        }
    );
    Ok(())
}

/// Java stores ports as an Integer: a Curator-written instance with a port outside 0-65535
/// (-1 for "none") is read, without that port, rather than hidden.
#[test]
fn ports_outside_the_tcp_range_read_as_none() {
    let serializer = JsonInstanceSerializer::default();
    for json in [
        br#"{"id":"x","port":-1,"sslPort":70000}"#.as_slice(),
        br#"{"id":"x","port":null}"#.as_slice(),
    ] {
        let instance: ServiceInstance<String> = serializer.deserialize(json).expect("readable");
        assert_eq!(
            (instance.id.as_str(), instance.port, instance.ssl_port),
            ("x", None, None)
        );
    }
    let instance: ServiceInstance<String> = serializer
        .deserialize(br#"{"id":"x","port":65535,"sslPort":0}"#)
        .unwrap();
    assert_eq!((instance.port, instance.ssl_port), (Some(65535), Some(0)));
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        br#"{"port":4294967296}"#,
        br#"{"port":"80"}"#,
        br#"{"serviceType":"dynamic"}"#,
        br#"{"serviceType":"EPHEMERAL"}"#,
        br#"{"name":1}"#,
        br#"{"uriSpec":"{scheme}"}"#,
        br#"{"registrationTimeUTC":1.5}"#,
        br#"{"enabled":"yes"}"#,
        br#"{"name":"a"} trailing"#,
    ];
    for bytes in cases {
        let result = COMPATIBLE.deserialize::<String>(bytes);
        assert!(
            matches!(result, Err(Error::Deserialize(_))),
            "{:?}: {result:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let err = COMPATIBLE.deserialize::<String>(b"{\"name\":").err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.starts_with("cannot deserialize service instance: "),
        "{message}"
    );
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn payload_serialize_failure_is_an_error() {
    // A map with non-string keys cannot be JSON.
    let bad = instance(Some(BTreeMap::from([((1, 2), "x")])));
    let result = COMPATIBLE.serialize(&bad);
    assert!(matches!(result, Err(Error::Serialize(_))), "{result:?}");
}

#[test]
fn strings_are_escaped_like_jackson() -> TestResult {
    let mut instance = instance(Some(
        "q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€".to_owned(),
    ));
    instance.uri_spec = None;
    let json = text(&COMPATIBLE.serialize(&instance)?);
    // Jackson: short escapes where JSON has them, \u00XX with upper-case hex for the other
    // control characters, '/', DEL and non-ASCII written as they are.
    assert!(
        json.contains(r#""payload":"q\"b\\s/\b\f\n\r\t\u0001\u001F"#),
        "{json}"
    );
    assert!(json.contains("\u{7f}é€\","), "{json}");
    assert_eq!(COMPATIBLE.deserialize::<String>(json.as_bytes())?, instance);
    Ok(())
}

#[test]
fn serde_impls_use_the_full_shape() -> TestResult {
    let java = instance(Some(JavaPayload::new("com.example.Payload", payload())));
    let via_serde = serde_json::to_vec(&java)?;
    assert_eq!(via_serde, FULL.serialize(&java)?);
    let back: ServiceInstance<JavaPayload<Payload>> = serde_json::from_str(&curator_md_json())?;
    assert_eq!(back, java);
    Ok(())
}

#[test]
fn the_trait_object_works_like_the_inherent_methods() -> TestResult {
    let serializer: Box<dyn InstanceSerializer<String>> =
        Box::new(JsonInstanceSerializer::default());
    let instance = instance(Some("x".to_owned()));
    let bytes = serializer.serialize(&instance)?;
    assert_eq!(bytes, COMPATIBLE.serialize(&instance)?);
    assert_eq!(serializer.deserialize(&bytes)?, instance);
    assert_eq!(
        JsonInstanceSerializer::default().mode(),
        SerializationMode::Compatible
    );
    Ok(())
}

#[test]
fn java_payload_writes_class_first_and_reads_without_it() -> TestResult {
    let p = JavaPayload::new("com.example.Payload", payload());
    assert_eq!(
        serde_json::to_string(&p)?,
        r#"{"@class":"com.example.Payload","id":"application-1","metadata":{}}"#
    );
    let bare: JavaPayload<Payload> = serde_json::from_str(r#"{"metadata":{"k":"v"},"id":"x"}"#)?;
    assert_eq!(bare.class, "");
    assert_eq!(bare.value.metadata.get("k").map(String::as_str), Some("v"));
    let later: JavaPayload<Payload> =
        serde_json::from_str(r#"{"id":"x","metadata":{},"@class":"a.B"}"#)?;
    assert_eq!(later.class, "a.B");
    assert_eq!(later.into_inner().id, "x");
    Ok(())
}
