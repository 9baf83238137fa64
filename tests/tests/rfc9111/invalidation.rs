//! RFC 9111 §4.4: invalidation by unsafe methods.

use std::sync::Arc;

use rampart_tests::test_origin::Reply;

use crate::support::{expect_eq, Ctx, Outcome};

// ---- §4.4: invalidation ----------------------------------------------------------------------

pub(crate) async fn unsafe_methods_invalidate(c: Arc<Ctx>) -> Outcome {
    // Methods the edge does not know are forwarded as they are (workerd's own HTTP parser
    // refuses a few, such as M-SEARCH, before the Worker runs).
    for method in ["POST", "PUT", "DELETE", "PROPFIND"] {
        let path = format!("/s4.4/{}", method.to_ascii_lowercase());
        c.origin.script(
            &path,
            vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
        );
        c.get(&path, &[]).await?;
        let write = c.send(method, &path, &[], Some("abc")).await?;
        expect_eq(write.status, 200, &format!("{method} status"))?;
        let seen = c.origin.requests(&path);
        expect_eq(
            seen.get(1).map(|r| (r.method.clone(), r.body.clone())),
            Some((method.to_owned(), b"abc".to_vec())),
            &format!("{method} forwarded with its body"),
        )?;
        c.get(&path, &[]).await?;
        expect_eq(
            c.count(&path),
            3,
            &format!("GET after {method} goes to the origin"),
        )?;
    }
    Ok(())
}

pub(crate) async fn failed_writes_do_not_invalidate(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.4/failed";
    c.origin.script(
        path,
        vec![
            Reply::ok("x").header("Cache-Control", "max-age=600"),
            Reply::status(500).body("no"),
        ],
    );
    c.get(path, &[]).await?;
    c.send("POST", path, &[], Some("abc")).await?;
    c.get(path, &[]).await?;
    expect_eq(
        c.count(path),
        2,
        "the stored response survives a failed POST",
    )
}

pub(crate) async fn location_and_content_location_are_invalidated(c: Arc<Ctx>) -> Outcome {
    let (target, location, content) = ("/s4.4/loc", "/s4.4/loc/location", "/s4.4/loc/content");
    for path in [location, content] {
        c.origin.script(
            path,
            vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
        );
        c.get(path, &[]).await?;
    }
    c.origin.script(
        target,
        vec![Reply::ok("done")
            .header("Location", location)
            .header("Content-Location", &format!("{}{content}", c.cache))],
    );
    c.send("POST", target, &[], Some("abc")).await?;
    for path in [location, content] {
        c.get(path, &[]).await?;
        expect_eq(c.count(path), 2, &format!("{path} invalidated"))?;
    }
    Ok(())
}
