//! Down-instance exclusion through the public API, with injected time.

use std::time::{Duration, Instant};

use zk_discovery::{
    DownInstancePolicy, DownInstances, Error, ProviderStrategy, RoundRobin, ServiceInstance,
};

#[test]
fn excluded_after_threshold_errors_and_readmitted_after_the_window() -> Result<(), Error> {
    let policy = DownInstancePolicy::default();
    assert_eq!(policy.timeout, Duration::from_secs(30));
    assert_eq!(policy.error_threshold, 2);
    let down = DownInstances::new(policy);
    let all: Vec<ServiceInstance<()>> = ["a", "b"]
        .iter()
        .map(|id| ServiceInstance::builder("svc").id(*id).address("h").build())
        .collect::<Result<_, _>>()?;
    let live = |now: Instant| {
        let mut list = all.clone();
        down.remove_down_at(&mut list, now);
        list.into_iter().map(|i| i.id).collect::<Vec<_>>()
    };

    let t0 = Instant::now();
    let s = Duration::from_secs;
    down.note_error_at("a", t0);
    assert_eq!(live(t0), ["a", "b"], "one error: still up");
    down.note_error_at("a", t0 + s(5));
    assert_eq!(live(t0 + s(5)), ["b"], "two errors within 30 s: down");
    assert_eq!(live(t0 + s(29)), ["b"]);
    // A provider picking among the live instances never returns "a" meanwhile.
    let strategy = RoundRobin::new();
    let list: Vec<ServiceInstance<()>> = all
        .iter()
        .filter(|i| !down.is_down_at(&i.id, t0 + s(10)))
        .cloned()
        .collect();
    for _ in 0..5 {
        assert_eq!(strategy.pick(&list).map(|i| i.id.as_str()), Some("b"));
    }
    // 30 s after the first error the record expires: readmitted with a clean slate.
    assert_eq!(live(t0 + s(30)), ["a", "b"]);
    down.note_error_at("a", t0 + s(31));
    assert_eq!(live(t0 + s(31)), ["a", "b"], "one error in the new window");
    Ok(())
}

#[test]
fn the_wall_clock_api_agrees() {
    let down = DownInstances::new(DownInstancePolicy::new(Duration::from_secs(60), 1));
    assert!(!down.is_down("a"));
    down.note_error("a");
    assert!(down.is_down("a"));
    assert!(!down.is_down("b"));
    assert_eq!(down.policy().error_threshold, 1);
}
