//! PostgreSQL over TLS, as managed offerings require: a server of the test's own that accepts
//! only TLS, with a certificate signed by a CA made in the test. `sslmode=verify-full` with
//! `sslrootcert` connects and is encrypted; without TLS the server refuses, without the CA the
//! origin refuses; the origin binary serves reads and writes over it.

mod common;
#[path = "support/test_ca.rs"]
mod test_ca;
#[path = "support/tls_postgres.rs"]
mod tls_postgres;

use serde_json::json;
use sqlx::Connection;
use test_ca::TestCa;
use tls_postgres::TlsPostgres;

async fn connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    sqlx::PgConnection::connect(url).await
}

async fn encrypted(connection: &mut sqlx::PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(connection)
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn postgres_is_reached_over_tls_verified_against_the_configured_ca() {
    let ca = TestCa::new();
    let server = TlsPostgres::start(&ca);
    let root = ca.ca.display().to_string();
    let verified = server.url(&format!("sslmode=verify-full&sslrootcert={root}"));

    let mut connection = connect(&verified).await.expect("verified TLS connection");
    assert!(encrypted(&mut connection).await, "the session is encrypted");
    let mut required = connect(&server.url("sslmode=require"))
        .await
        .expect("TLS without verification");
    assert!(encrypted(&mut required).await);

    let plain = connect(&server.url("sslmode=disable")).await;
    assert!(plain.is_err(), "the server accepts TLS only");
    let unknown_ca = connect(&server.url("sslmode=verify-full")).await;
    assert!(
        unknown_ca.is_err(),
        "a certificate from a CA the client was not given is refused"
    );

    let prefix = common::unique_prefix("postgres-tls");
    let (_origin, base) = common::spawn_with(&verified, &prefix, &[("REDIS_URL", "")]).await;
    let database = common::readiness_of(&base, "database").await;
    assert_eq!(database["status"], "up", "{database}");
    let patched = reqwest::Client::new()
        .patch(format!("{base}/api/tasks/2"))
        .json(&json!({ "title": "Written over TLS" }))
        .send()
        .await
        .expect("reachable");
    assert!(patched.status().is_success(), "{}", patched.status());
    let stored: String = sqlx::query_scalar("SELECT title FROM tasks WHERE id = 2")
        .fetch_one(&mut connection)
        .await
        .expect("the task row");
    assert_eq!(stored, "Written over TLS");
}

#[tokio::test]
async fn the_origin_refuses_a_server_its_ca_did_not_sign() {
    let (ca, other) = (TestCa::new(), TestCa::new());
    let server = TlsPostgres::start(&ca);
    let wrong = server.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.ca.display()
    ));
    assert!(connect(&wrong).await.is_err());
    let origin = tokio::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .env("ORIGIN_ADDR", format!("127.0.0.1:{}", common::free_port()))
        .env("DATABASE_URL", &wrong)
        .env("REDIS_URL", "")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), origin)
        .await
        .expect("the origin gives up in time")
        .expect("the origin runs");
    assert!(
        !output.status.success(),
        "no start without a trusted database"
    );
    let log = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        log.to_lowercase().contains("certificate") || log.contains("tls"),
        "the log says why: {log}"
    );
}
