//! Allocation over the SQLite store (in memory) and over a store that loses races.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::Connection;
use underlay_ipam::{
    allocate, reserve_in_subnet, reserve_static, IpamError, Pool, Reservation, SqliteStore, Store,
    StoreError,
};

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    SqliteStore::create_schema(&conn).unwrap();
    conn
}

fn pool(subnet: &str, range: Option<&str>) -> Pool {
    Pool::new(
        "net1/v4",
        subnet.parse().unwrap(),
        range.map(|r| r.parse().unwrap()),
    )
    .unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn first_free_after_the_gateway() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/24", None);
    reserve_in_subnet(&mut store, &p, ip("10.0.0.1"), "gateway").unwrap();
    assert_eq!(allocate(&mut store, &p, "a").unwrap(), ip("10.0.0.2"));
    assert_eq!(allocate(&mut store, &p, "b").unwrap(), ip("10.0.0.3"));
}

#[test]
fn reuses_the_lowest_released_address() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/24", None);
    for owner in ["a", "b", "c", "d"] {
        allocate(&mut store, &p, owner).unwrap();
    }
    assert_eq!(
        store.release_owner(&p.id, "b").unwrap(),
        vec![ip("10.0.0.2")]
    );
    assert_eq!(allocate(&mut store, &p, "e").unwrap(), ip("10.0.0.2"));
    assert_eq!(allocate(&mut store, &p, "f").unwrap(), ip("10.0.0.5"));
}

#[test]
fn skips_static_and_aux_addresses_in_the_middle() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/24", Some("10.0.0.128/25"));
    reserve_in_subnet(&mut store, &p, ip("10.0.0.1"), "gateway").unwrap();
    reserve_static(&mut store, &p, ip("10.0.0.129"), "static").unwrap();
    reserve_in_subnet(&mut store, &p, ip("10.0.0.130"), "aux router2").unwrap();
    let got: Vec<IpAddr> = (0..3)
        .map(|i| allocate(&mut store, &p, &format!("e{i}")).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![ip("10.0.0.128"), ip("10.0.0.131"), ip("10.0.0.132")]
    );
}

#[test]
fn static_conflicts_name_the_owner() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/24", None);
    reserve_in_subnet(&mut store, &p, ip("10.0.0.1"), "the gateway").unwrap();
    let err = reserve_static(&mut store, &p, ip("10.0.0.1"), "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.0.1 is already in use by the gateway"
    );
    reserve_static(&mut store, &p, ip("10.0.0.9"), "endpoint web").unwrap();
    let err = reserve_static(&mut store, &p, ip("10.0.0.9"), "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.0.0.9 is already in use by endpoint web"
    );
}

#[test]
fn exhaustion_is_an_error_naming_the_window() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/29", Some("10.0.0.4/30"));
    for owner in ["a", "b", "c"] {
        allocate(&mut store, &p, owner).unwrap();
    }
    let err = allocate(&mut store, &p, "d").unwrap_err();
    assert!(matches!(err, IpamError::Exhausted { .. }));
    assert_eq!(err.to_string(), "no free address left in 10.0.0.4/30");
}

#[test]
fn pools_are_independent_and_release_pool_clears() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let a = pool("10.0.0.0/24", None);
    let b = Pool::new("net2/v4", "10.0.0.0/24".parse().unwrap(), None).unwrap();
    assert_eq!(allocate(&mut store, &a, "x").unwrap(), ip("10.0.0.1"));
    assert_eq!(allocate(&mut store, &b, "x").unwrap(), ip("10.0.0.1"));
    assert_eq!(store.release_pool(&a.id).unwrap(), 1);
    assert!(store.reservations(&a.id).unwrap().is_empty());
    assert_eq!(store.reservations(&b.id).unwrap().len(), 1);
    assert_eq!(allocate(&mut store, &a, "y").unwrap(), ip("10.0.0.1"));
}

#[test]
fn v6_allocation_and_far_statics() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = Pool::new("n/v6", "2001:db8:babe:cafe::/64".parse().unwrap(), None).unwrap();
    reserve_in_subnet(&mut store, &p, ip("2001:db8:babe:cafe::1"), "gateway").unwrap();
    // Far beyond the dynamic window: stored without an offset, still unique.
    reserve_static(
        &mut store,
        &p,
        ip("2001:db8:babe:cafe:ffff:ffff:ffff:fffe"),
        "a",
    )
    .unwrap();
    assert!(reserve_static(
        &mut store,
        &p,
        ip("2001:db8:babe:cafe:ffff:ffff:ffff:fffe"),
        "b"
    )
    .is_err());
    assert_eq!(
        allocate(&mut store, &p, "c").unwrap(),
        ip("2001:db8:babe:cafe::2")
    );
}

#[test]
fn allocation_stays_first_free_as_the_pool_fills() {
    let conn = db();
    let mut store = SqliteStore::new(&conn);
    let p = pool("10.0.0.0/22", None);
    for i in 0..600u32 {
        let got = allocate(&mut store, &p, &format!("e{i}")).unwrap();
        let expected = p.subnet.nth(u128::from(i) + 1);
        assert_eq!(got, expected);
    }
    store.release_owner(&p.id, "e10").unwrap();
    store.release_owner(&p.id, "e300").unwrap();
    assert_eq!(allocate(&mut store, &p, "x").unwrap(), ip("10.0.0.11"));
    assert_eq!(allocate(&mut store, &p, "y").unwrap(), ip("10.0.1.45"));
    assert_eq!(allocate(&mut store, &p, "z").unwrap(), p.subnet.nth(601));
}

/// A store whose `first_free` hint is stale: another host took the address in between.
#[derive(Default)]
struct RacyStore {
    held: BTreeMap<(String, IpAddr), String>,
    steal_next: Vec<u128>,
}

impl Store for RacyStore {
    fn reserve(
        &mut self,
        pool: &str,
        ip: IpAddr,
        _off: u128,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let key = (pool.to_string(), ip);
        if self.held.contains_key(&key) {
            return Ok(false);
        }
        self.held.insert(key, owner.to_string());
        Ok(true)
    }
    fn owner_of(&mut self, pool: &str, ip: IpAddr) -> Result<Option<String>, StoreError> {
        Ok(self.held.get(&(pool.to_string(), ip)).cloned())
    }
    fn first_free(&mut self, pool: &str, lo: u128, hi: u128) -> Result<Option<u128>, StoreError> {
        let subnet: underlay_ipam::Subnet = "10.0.0.0/24".parse().unwrap();
        let candidate =
            (lo..=hi).find(|o| !self.held.contains_key(&(pool.to_string(), subnet.nth(*o))));
        if let Some(c) = candidate {
            if self.steal_next.contains(&c) {
                self.held
                    .insert((pool.to_string(), subnet.nth(c)), "other host".into());
            }
        }
        Ok(candidate)
    }
    fn release_owner(&mut self, _: &str, _: &str) -> Result<Vec<IpAddr>, StoreError> {
        unimplemented!()
    }
    fn release_pool(&mut self, _: &str) -> Result<usize, StoreError> {
        unimplemented!()
    }
    fn reservations(&mut self, _: &str) -> Result<Vec<Reservation>, StoreError> {
        unimplemented!()
    }
}

#[test]
fn a_lost_race_moves_on_to_the_next_address() {
    let mut store = RacyStore {
        steal_next: vec![1, 2],
        ..Default::default()
    };
    let p = pool("10.0.0.0/24", None);
    assert_eq!(allocate(&mut store, &p, "me").unwrap(), ip("10.0.0.3"));
    assert_eq!(
        store.owner_of(&p.id, ip("10.0.0.1")).unwrap().as_deref(),
        Some("other host")
    );
}
