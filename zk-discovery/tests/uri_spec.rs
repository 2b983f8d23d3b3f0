//! `UriSpec`: Curator's template parsing and building rules (cases from Curator's
//! `TestUriSpec` plus the edge cases of its `StringTokenizer` parser).

use std::collections::HashMap;

use zk_discovery::{Error, ServiceInstance, ServiceType, UriPart, UriSpec};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn parts(spec: &UriSpec) -> Vec<(&str, bool)> {
    spec.parts()
        .iter()
        .map(|p| (p.value.as_str(), p.variable))
        .collect()
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn instance() -> Result<ServiceInstance<()>, Error> {
    ServiceInstance::builder("foo")
        .id("bar")
        .address("1.2.3.4")
        .port(5)
        .registration_time_utc(789)
        .build()
}

#[test]
fn parses_variables_and_literals() -> TestResult {
    // Curator's testBasic.
    let spec = UriSpec::parse("{one}{two}three-four-five{six}seven{eight}")?;
    assert_eq!(
        parts(&spec),
        [
            ("one", true),
            ("two", true),
            ("three-four-five", false),
            ("six", true),
            ("seven", false),
            ("eight", true)
        ]
    );
    // Variable names are trimmed (Java's trim: characters up to U+0020); literals are not.
    let spec = UriSpec::parse(" a {\t port \n} b ")?;
    assert_eq!(
        parts(&spec),
        [(" a ", false), ("port", true), (" b ", false)]
    );
    // `{}` produces no part at all; an all-blank variable is the empty name.
    assert_eq!(
        parts(&UriSpec::parse("x{}y")?),
        [("x", false), ("y", false)]
    );
    assert_eq!(parts(&UriSpec::parse("{ }")?), [("", true)]);
    assert!(UriSpec::parse("")?.parts().is_empty());
    Ok(())
}

#[test]
fn brackets_are_literal_brace_variables() -> TestResult {
    // Curator's testEscapes.
    let spec = UriSpec::parse("{one}two-three-{[}four{]}-five{six}")?;
    assert_eq!(
        parts(&spec),
        [
            ("one", true),
            ("two-three-", false),
            ("[", true),
            ("four", false),
            ("]", true),
            ("-five", false),
            ("six", true)
        ]
    );
    assert_eq!(
        spec.build_with(&vars(&[("one", "1"), ("six", "6")])),
        "1two-three-{four}-five6"
    );
    // Bare brackets are ordinary text.
    assert_eq!(UriSpec::parse("[x]")?.build(), "[x]");
    Ok(())
}

#[test]
fn malformed_templates_are_rejected_with_curators_messages() {
    for (raw, reason) in [
        (
            "{a{b}}",
            "{ is not allowed inside of a variable specification",
        ),
        ("a}", "} must be preceded by {"),
        ("{a}}", "} must be preceded by {"),
        (
            "{scheme}://{address",
            "Final variable not closed - expected }",
        ),
        ("{", "Final variable not closed - expected }"),
    ] {
        assert_eq!(
            UriSpec::parse(raw),
            Err(Error::InvalidUriSpec {
                spec: raw.to_owned(),
                reason
            }),
            "{raw}"
        );
        assert!(raw.parse::<UriSpec>().is_err());
    }
}

#[test]
fn curators_default_example() -> TestResult {
    let spec: UriSpec = "{scheme}://{address}:{port}".parse()?;
    assert_eq!(spec.to_string(), "{scheme}://{address}:{port}");
    assert_eq!(
        spec.build_for(&instance()?, &HashMap::new()),
        "http://1.2.3.4:5"
    );
    // Without an instance only the scheme is known.
    assert_eq!(spec.build(), "http://:");
    Ok(())
}

#[test]
fn scheme_is_https_when_there_is_an_ssl_port() -> TestResult {
    // Curator's testScheme.
    let spec = UriSpec::parse("{scheme}://foo.com")?;
    let mut instance = instance()?;
    assert_eq!(spec.build_for(&instance, &HashMap::new()), "http://foo.com");
    instance.ssl_port = Some(5);
    assert_eq!(
        spec.build_for(&instance, &HashMap::new()),
        "https://foo.com"
    );
    // A caller's scheme wins.
    assert_eq!(
        spec.build_for(&instance, &vars(&[("scheme", "wss")])),
        "wss://foo.com"
    );
    Ok(())
}

#[test]
fn every_instance_variable() -> TestResult {
    // Curator's testFromInstance.
    let mut instance = instance()?;
    instance.ssl_port = Some(6);
    instance.service_type = ServiceType::Permanent;
    let spec = UriSpec::parse(
        "{scheme}://{address}:{port}:{ssl-port}/{name}/{id}/{registration-time-utc}/{service-type}",
    )?;
    assert_eq!(
        spec.build_for(&instance, &vars(&[("scheme", "test")])),
        "test://1.2.3.4:5:6/foo/bar/789/permanent"
    );
    instance.service_type = ServiceType::DynamicSequential;
    assert_eq!(
        UriSpec::parse("{service-type}")?.build_for(&instance, &HashMap::new()),
        "dynamic_sequential"
    );
    // Caller variables override instance fields too.
    assert_eq!(
        UriSpec::parse("{address}")?.build_for(&instance, &vars(&[("address", "x")])),
        "x"
    );
    Ok(())
}

#[test]
fn unknown_and_unset_variables_build_to_nothing() -> TestResult {
    let mut instance = instance()?;
    instance.port = None;
    instance.address = None;
    let spec = UriSpec::parse("<{nope}|{port}|{ssl-port}|{address}|{ }>")?;
    assert_eq!(spec.build_for(&instance, &HashMap::new()), "<||||>");
    // Instance variables without an instance are unknown.
    assert_eq!(UriSpec::parse("<{name}{id}>")?.build(), "<>");
    // ServiceInstance::build_uri_spec without a spec is "".
    instance.uri_spec = None;
    assert_eq!(instance.build_uri_spec(), "");
    Ok(())
}

#[test]
fn json_shape_and_editing() -> TestResult {
    let mut spec = UriSpec::parse("{scheme}://x")?;
    assert_eq!(
        serde_json::to_string(&spec)?,
        r#"{"parts":[{"value":"scheme","variable":true},{"value":"://x","variable":false}]}"#
    );
    assert!(spec.remove(&UriPart::literal("://x")));
    assert!(!spec.remove(&UriPart::literal("://x")));
    spec.push(UriPart::variable("[")); // pushed parts print in source syntax
    assert_eq!(spec.to_string(), "{scheme}{[}");
    // Missing fields take Java's defaults (empty parts / empty literal).
    let lenient: UriSpec = serde_json::from_str(r#"{"parts":[{}, {"variable":true}]}"#)?;
    assert_eq!(parts(&lenient), [("", false), ("", true)]);
    assert!(serde_json::from_str::<UriSpec>("{}")?.parts().is_empty());
    Ok(())
}
