//! Conformance suite of the `CollectionIndex` port.

use dss_core::ports::collections::CollectionIndex;

/// Runs every property against `index`; owners are prefixed with `ns`.
pub async fn run(index: &dyn CollectionIndex, ns: &str) {
    let (a, b) = (format!("{ns}-a@example.org"), format!("{ns}-b@example.org"));
    let v = |i: u32| format!("2020-01-0{i}T000000.000000Z");
    for (u, ver) in [("u1", v(1)), ("u2", v(1)), ("u1", v(2)), ("u1", v(2))] {
        index.add(&a, u, &ver).await.expect("add");
    }
    index.add(&b, "u3", &v(1)).await.expect("add");
    let (all, total) = index.list(&a, 0, 10).await.expect("list");
    assert_eq!(total, 3, "adding twice records once");
    let want: Vec<(String, String)> = vec![
        ("u2".into(), v(1)),
        ("u1".into(), v(2)),
        ("u1".into(), v(1)),
    ];
    assert_eq!(all, want, "descending by uuid, then version");
    let (page, total) = index.list(&a, 1, 1).await.expect("page");
    assert_eq!((page, total), (vec![("u1".to_string(), v(2))], 3));
    let (past, total) = index.list(&a, 5, 10).await.expect("past the end");
    assert!(past.is_empty());
    assert_eq!(total, 3);
    index.remove(&a, "u1").await.expect("remove");
    assert_eq!(
        index.list(&a, 0, 10).await.expect("list"),
        (vec![("u2".to_string(), v(1))], 1)
    );
    assert_eq!(
        index.list(&b, 0, 10).await.expect("list").1,
        1,
        "owners are separate"
    );
}
