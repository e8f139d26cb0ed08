//! Diff against real servers: a namespace between two revisions and two
//! namespaces, page by page, in key order, every page as of the revisions
//! the first one fixed.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{DiffRequest, GetRequest, diff_entry::Kind};
use veltrix_testsystem::*;

/// Every entry of a diff, page by page: (key, kind, before, after).
async fn diff_all(q: &mut Query, request: DiffRequest) -> (Vec<(String, Kind, String, String)>, usize) {
    let (mut out, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = q.diff(DiffRequest { page_token: token, ..request.clone() }).await.unwrap().into_inner();
        pages += 1;
        assert!(page.entries.len() <= request.page_size.max(1) as usize, "a page holds at most page_size");
        for e in &page.entries {
            let text = |kv: &Option<veltrix_proto::v1::KeyValue>| {
                kv.as_ref().map_or(String::new(), |kv| String::from_utf8_lossy(&kv.value).into_owned())
            };
            out.push((e.key.clone(), e.kind(), text(&e.before), text(&e.after)));
        }
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_revisions_and_two_namespaces_page_by_page_in_key_order() {
    let env = TestSystem::start().await;
    let (mut cmd, mut q) = (env.cmd(), env.q());
    let mut r1 = 0;
    for i in 0..12 {
        r1 = cmd.put(put("df/app", &format!("k{i:02}"), "1")).await.unwrap().into_inner().revision;
    }
    for i in (0..12).step_by(3) {
        cmd.put(put("df/app", &format!("k{i:02}"), "2")).await.unwrap();
    }
    let del = veltrix_proto::v1::DeleteRequest { namespace: "df/app".into(), key: "k01".into(), ..Default::default() };
    cmd.delete(del).await.unwrap();
    let r2 = cmd.put(put("df/app", "new", "x")).await.unwrap().into_inner().revision;
    q.get(GetRequest { min_revision: Some(r2), ..get("df/app", "new") }).await.unwrap();

    let request =
        DiffRequest { from_namespace: "df/app".into(), from_revision: Some(r1), page_size: 2, ..Default::default() };
    let (entries, pages) = diff_all(&mut q, request).await;
    let expected: Vec<(String, Kind, String, String)> = [
        ("k00", Kind::Changed, "1", "2"),
        ("k01", Kind::Removed, "1", ""),
        ("k03", Kind::Changed, "1", "2"),
        ("k06", Kind::Changed, "1", "2"),
        ("k09", Kind::Changed, "1", "2"),
        ("new", Kind::Added, "", "x"),
    ]
    .iter()
    .map(|(k, kind, b, a)| ((*k).to_owned(), *kind, (*b).to_owned(), (*a).to_owned()))
    .collect();
    assert_eq!(entries, expected);
    assert!(pages >= 3, "pages of 2: {pages}");

    // Two namespaces: staging against prod, under a prefix.
    cmd.put(put("df/prod", "k00", "1")).await.unwrap();
    let r = cmd.put(put("df/prod", "only-prod", "p")).await.unwrap().into_inner().revision;
    q.get(GetRequest { min_revision: Some(r), ..get("df/prod", "k00") }).await.unwrap();
    let request = DiffRequest {
        from_namespace: "df/prod".into(),
        to_namespace: "df/app".into(),
        prefix: "k0".into(),
        page_size: 100,
        ..Default::default()
    };
    let (entries, _) = diff_all(&mut q, request).await;
    let keys: Vec<_> = entries.iter().map(|(k, kind, ..)| (k.as_str(), *kind)).collect();
    assert_eq!(
        keys,
        [
            ("k00", Kind::Changed),
            ("k02", Kind::Added),
            ("k03", Kind::Added),
            ("k04", Kind::Added),
            ("k05", Kind::Added),
            ("k06", Kind::Added),
            ("k07", Kind::Added),
            ("k08", Kind::Added),
            ("k09", Kind::Added)
        ]
    );
    let bad = DiffRequest { from_namespace: "Bad".into(), ..Default::default() };
    let status = assert_code(q.diff(bad).await, Code::InvalidArgument);
    assert!(status.message().starts_with("from_namespace: "), "{}", status.message());
}
