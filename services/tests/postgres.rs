//! A real PostgreSQL: start, query, crash, start again.

mod common;

use common::{refused, Scratch};
use services::Postgres;

#[test]
fn data_survives_a_kill_and_the_port_stays() {
    let scratch = Scratch::new("pg-kill");
    let mut pg = Postgres::start(scratch.path().join("pg")).unwrap();
    assert_eq!(pg.psql("ferrochat", "select 1").unwrap(), "1");
    let port = pg.port();
    let url = pg.create_database("kept").unwrap();
    assert_eq!(url, format!("postgres://ferrochat@127.0.0.1:{port}/kept"));
    pg.psql("kept", "create table t (x int); insert into t values (42)")
        .unwrap();
    let err = pg.create_database("kept").unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    pg.kill().unwrap();
    assert!(pg.pid().is_none());
    assert!(refused(port), "nothing may listen after a kill");
    assert!(pg.psql("kept", "select 1").is_err());

    pg.start_again().unwrap();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("kept", "select x from t").unwrap(), "42");

    // A clean stop and start keeps it too.
    pg.stop().unwrap();
    assert!(refused(port));
    pg.start_again().unwrap();
    assert_eq!(pg.psql("kept", "select count(*) from t").unwrap(), "1");

    // Settings the cluster relies on.
    assert_eq!(pg.psql("kept", "show synchronous_commit").unwrap(), "on");
    assert_eq!(pg.psql("kept", "show max_connections").unwrap(), "300");
    drop(pg);
    assert!(refused(port), "drop stops the server");
}

#[test]
fn a_second_start_of_a_directory_keeps_its_data() {
    let scratch = Scratch::new("pg-again");
    let dir = scratch.path().join("pg");
    {
        let pg = Postgres::start(&dir).unwrap();
        pg.psql(
            "ferrochat",
            "create table kept (x int); insert into kept values (7)",
        )
        .unwrap();
    }
    let pg = Postgres::start(&dir).unwrap();
    assert_eq!(pg.psql("ferrochat", "select x from kept").unwrap(), "7");
}

#[test]
fn the_shared_server_gives_each_test_its_database() {
    let pg = Postgres::shared();
    assert!(std::ptr::eq(pg, Postgres::shared()), "one per process");
    let a = pg.create_database("shared_a").unwrap();
    let b = pg.create_database("shared_b").unwrap();
    assert_ne!(a, b);
    pg.psql("shared_a", "create table t (x int)").unwrap();
    assert!(pg.psql("shared_b", "select * from t").is_err());
    assert!(pg.create_database("bad name").is_err());
}
