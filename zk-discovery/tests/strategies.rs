//! Provider strategies: exact round robin, uniform random, sticky.

use std::collections::HashMap;
use std::sync::Arc;

use zk_discovery::{Error, ProviderStrategy, Random, RoundRobin, ServiceInstance, Sticky};

fn instances(ids: &[&str]) -> Result<Vec<ServiceInstance<()>>, Error> {
    ids.iter()
        .map(|id| {
            ServiceInstance::builder("svc")
                .id(*id)
                .address("10.0.0.1")
                .build()
        })
        .collect()
}

fn pick_id<S: ProviderStrategy<()> + ?Sized>(
    strategy: &S,
    list: &[ServiceInstance<()>],
) -> Option<String> {
    strategy.pick(list).map(|i| i.id.clone())
}

#[test]
fn empty_list_gives_none() {
    let empty: Vec<ServiceInstance<()>> = Vec::new();
    assert!(RoundRobin::new().pick(&empty).is_none());
    assert!(Random::new().pick(&empty).is_none());
    let sticky = Sticky::new(RoundRobin::new());
    assert!(sticky.pick(&empty).is_none());
    assert_eq!(sticky.instance_number(), -1);
    assert_eq!(sticky.current_id(), None);
}

#[test]
fn round_robin_rotates_exactly() -> Result<(), Error> {
    let list = instances(&["a", "b", "c"])?;
    let strategy = RoundRobin::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for n in 0..1000 {
        let id = pick_id(&strategy, &list).unwrap_or_default();
        assert_eq!(id, list[n % 3].id, "pick {n}");
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&334));
    assert_eq!(counts.get("b"), Some(&333));
    assert_eq!(counts.get("c"), Some(&333));
    Ok(())
}

#[test]
fn round_robin_continues_its_counter_when_the_list_changes() -> Result<(), Error> {
    let strategy = RoundRobin::new();
    let three = instances(&["a", "b", "c"])?;
    let two = instances(&["x", "y"])?;
    assert_eq!(pick_id(&strategy, &three).as_deref(), Some("a")); // counter 0
    assert_eq!(pick_id(&strategy, &three).as_deref(), Some("b")); // 1
    assert_eq!(pick_id(&strategy, &two).as_deref(), Some("x")); // 2 % 2
    assert_eq!(pick_id(&strategy, &two).as_deref(), Some("y")); // 3 % 2
    assert_eq!(pick_id(&strategy, &three).as_deref(), Some("b")); // 4 % 3
    Ok(())
}

#[test]
fn round_robin_is_exact_across_threads() -> Result<(), Error> {
    let list = Arc::new(instances(&["a", "b", "c"])?);
    let strategy: Arc<dyn ProviderStrategy<()>> = Arc::new(RoundRobin::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let list = Arc::clone(&list);
            let strategy = Arc::clone(&strategy);
            std::thread::spawn(move || {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..300 {
                    if let Some(id) = pick_id(&strategy, &list) {
                        *counts.entry(id).or_default() += 1;
                    }
                }
                counts
            })
        })
        .collect();
    let mut total: HashMap<String, usize> = HashMap::new();
    for handle in handles {
        for (id, n) in handle.join().unwrap_or_default() {
            *total.entry(id).or_default() += n;
        }
    }
    // 1200 picks over one shared counter: exactly 400 each, whatever the interleaving.
    for id in ["a", "b", "c"] {
        assert_eq!(total.get(id), Some(&400), "{id}");
    }
    Ok(())
}

#[test]
fn random_is_roughly_uniform() -> Result<(), Error> {
    let list = instances(&["a", "b", "c"])?;
    let strategy = Random::new();
    let picks = 10_000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..picks {
        let id = pick_id(&strategy, &list).unwrap_or_default();
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    let expected = picks as f64 / 3.0;
    let mut chi_square = 0.0;
    for id in ["a", "b", "c"] {
        let observed = counts.get(id).copied().unwrap_or(0) as f64;
        // ±15 % is about ±10.6 standard deviations here: a failure means a broken strategy.
        assert!(
            (observed - expected).abs() <= 0.15 * expected,
            "{id}: {observed} vs {expected:.0} ({counts:?})"
        );
        chi_square += (observed - expected).powi(2) / expected;
    }
    // 2 degrees of freedom: P(χ² > 30) ≈ 3e-7.
    assert!(chi_square < 30.0, "chi-square {chi_square} ({counts:?})");
    Ok(())
}

#[test]
fn sticky_sticks_until_its_instance_is_removed() -> Result<(), Error> {
    let sticky = Sticky::new(RoundRobin::new());
    let mut list = instances(&["a", "b", "c"])?;
    for _ in 0..10 {
        assert_eq!(pick_id(&sticky, &list).as_deref(), Some("a"));
    }
    assert_eq!(sticky.instance_number(), 0);
    assert_eq!(sticky.current_id().as_deref(), Some("a"));

    // Order changes and additions do not matter while "a" is there.
    list.reverse();
    list.extend(instances(&["d"])?);
    assert_eq!(pick_id(&sticky, &list).as_deref(), Some("a"));

    // "a" is gone: the inner round robin (counter now 1) picks list[1] = "b".
    list.retain(|i| i.id != "a");
    let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["c", "b", "d"]);
    assert_eq!(pick_id(&sticky, &list).as_deref(), Some("b"));
    assert_eq!(sticky.instance_number(), 1);
    for _ in 0..10 {
        assert_eq!(pick_id(&sticky, &list).as_deref(), Some("b"));
    }
    assert_eq!(sticky.instance_number(), 1);

    // Everything gone, then back: a new pick.
    assert_eq!(pick_id(&sticky, &[]), None);
    assert_eq!(sticky.current_id(), None);
    // The inner round robin's counter is 2: list[2] = "d".
    assert_eq!(pick_id(&sticky, &list).as_deref(), Some("d"));
    assert_eq!(sticky.instance_number(), 2);
    Ok(())
}

#[test]
fn sticky_matches_by_id_and_returns_the_current_copy() -> Result<(), Error> {
    let sticky = Sticky::new(Random::new());
    let list = instances(&["a", "b"])?;
    let first = pick_id(&sticky, &list).unwrap_or_default();
    // The same id re-registered with other data is still "our" instance.
    let mut updated = list.clone();
    for i in &mut updated {
        i.port = Some(9);
    }
    let picked = sticky.pick(&updated);
    assert_eq!(picked.map(|i| i.id.as_str()), Some(first.as_str()));
    assert_eq!(picked.and_then(|i| i.port), Some(9));
    assert_eq!(sticky.instance_number(), 0);
    Ok(())
}

#[test]
fn boxed_strategies_compose() -> Result<(), Error> {
    let list = instances(&["a", "b", "c"])?;
    let inner: Box<dyn ProviderStrategy<()>> = Box::new(RoundRobin::new());
    let sticky: Box<dyn ProviderStrategy<()>> = Box::new(Sticky::new(inner));
    for _ in 0..5 {
        assert_eq!(pick_id(&sticky, &list).as_deref(), Some("a"));
    }
    Ok(())
}
