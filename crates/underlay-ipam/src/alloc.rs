use std::net::IpAddr;

use crate::{IpamError, Pool, Store};

/// Reserves the first free address of the pool's window for `owner`.
///
/// The store's `first_free` is only a hint; a lost race (a concurrent writer on a shared store)
/// makes the loop move past that address.
pub fn allocate(store: &mut impl Store, pool: &Pool, owner: &str) -> Result<IpAddr, IpamError> {
    let exhausted = || IpamError::Exhausted {
        window: pool.window_text(),
    };
    let (mut lo, hi) = pool.window().ok_or_else(exhausted)?;
    while lo <= hi {
        let Some(offset) = store.first_free(&pool.id, lo, hi)? else {
            break;
        };
        let ip = pool.subnet.nth(offset);
        if store.reserve(&pool.id, ip, offset, owner)? {
            return Ok(ip);
        }
        lo = offset + 1;
    }
    Err(exhausted())
}

/// Reserves a specific address for `owner`, after checking it belongs to the pool.
pub fn reserve_static(
    store: &mut impl Store,
    pool: &Pool,
    ip: IpAddr,
    owner: &str,
) -> Result<(), IpamError> {
    let offset = pool.check_static(ip)?;
    if store.reserve(&pool.id, ip, offset, owner)? {
        return Ok(());
    }
    let owner = store
        .owner_of(&pool.id, ip)?
        .unwrap_or_else(|| "another endpoint".into());
    Err(IpamError::InUse { ip, owner })
}

/// Reserves an address the network itself uses (gateway, auxiliary address): it must lie in the
/// subnet but may be outside the ip range.
pub fn reserve_in_subnet(
    store: &mut impl Store,
    pool: &Pool,
    ip: IpAddr,
    owner: &str,
) -> Result<(), IpamError> {
    let whole = Pool::new(pool.id.clone(), pool.subnet, None)?;
    reserve_static(store, &whole, ip, owner)
}
