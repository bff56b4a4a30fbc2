//! The crate's [`Store`] over a host-local directory.

use std::net::IpAddr;

use super::disk::Session;
use super::index::Owner;
use super::HostLocalError;
use crate::{Pool, Reservation, Store, StoreError, Subnet};

/// A [`Store`] over a host-local network directory, inside one locked operation (see
/// [`HostLocal::with_store`](super::HostLocal::with_store)).
///
/// An owner is the reservation file's content: use [`HostLocalStore::owner`] to build
/// `<containerID>\r\n<ifname>`, which the reference plugin understands; an owner without
/// `\r\n` is written as a legacy ID-only reservation. The directory holds every pool of the
/// network, so look-ups by pool filter on the pool's subnet. Unlike [`HostLocal::allocate`](
/// super::HostLocal::allocate), `reserve` does not touch `last_reserved_ip.*` (a pool is not a
/// range set) and nothing here skips a gateway the pool's window contains.
pub struct HostLocalStore<'s> {
    session: &'s mut Session,
    pools: &'s [Pool],
}

impl<'s> HostLocalStore<'s> {
    pub(crate) fn new(session: &'s mut Session, pools: &'s [Pool]) -> Self {
        HostLocalStore { session, pools }
    }

    /// The owner text of attachment (container ID, ifname), as the reference writes it.
    pub fn owner(container_id: &str, ifname: &str) -> String {
        Owner {
            id: container_id.trim().to_string(),
            ifname: Some(ifname.to_string()),
        }
        .content()
    }

    fn subnet(&self, pool: &str) -> Result<Subnet, StoreError> {
        self.pools
            .iter()
            .find(|p| p.id == pool)
            .map(|p| p.subnet)
            .ok_or_else(|| StoreError(format!("unknown pool {pool:?} (not passed to with_store)")))
    }

    fn in_pool(&self, pool: &str) -> Result<Vec<(IpAddr, Owner)>, StoreError> {
        let subnet = self.subnet(pool)?;
        Ok(self
            .session
            .index
            .entries
            .iter()
            .filter(|(ip, _)| subnet.contains(**ip))
            .map(|(ip, o)| (*ip, o.clone()))
            .collect())
    }

    fn remove_all(&mut self, ips: &[IpAddr]) -> Result<(), StoreError> {
        for ip in ips {
            self.session.remove(*ip).map_err(store_error)?;
        }
        Ok(())
    }
}

fn store_error(err: HostLocalError) -> StoreError {
    StoreError(err.to_string())
}

impl Store for HostLocalStore<'_> {
    fn reserve(
        &mut self,
        _pool: &str,
        ip: IpAddr,
        _offset: u128,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let owner = Owner::parse(owner.as_bytes());
        if owner.id.is_empty() {
            return Err(StoreError("a host-local owner must not be empty".into()));
        }
        if self.session.index.entries.contains_key(&ip) {
            return Ok(false);
        }
        self.session.reserve(ip, &owner).map_err(store_error)
    }

    fn owner_of(&mut self, _pool: &str, ip: IpAddr) -> Result<Option<String>, StoreError> {
        Ok(self.session.index.entries.get(&ip).map(Owner::content))
    }

    fn first_free(&mut self, pool: &str, lo: u128, hi: u128) -> Result<Option<u128>, StoreError> {
        let subnet = self.subnet(pool)?;
        if lo > hi || hi > subnet.last_offset() {
            return Ok(None);
        }
        let mut next = lo;
        for ip in self
            .session
            .index
            .entries
            .range(subnet.nth(lo)..=subnet.nth(hi))
            .map(|(ip, _)| *ip)
        {
            let offset = subnet.offset_of(ip).unwrap_or(next);
            if offset > next {
                break;
            }
            next = offset + 1;
        }
        Ok((next <= hi).then_some(next))
    }

    fn release_owner(&mut self, pool: &str, owner: &str) -> Result<Vec<IpAddr>, StoreError> {
        let owner = Owner::parse(owner.as_bytes());
        let held = self.in_pool(pool)?;
        let mut ips: Vec<IpAddr> = held
            .iter()
            .filter(|(_, o)| *o == owner)
            .map(|(ip, _)| *ip)
            .collect();
        if ips.is_empty() && owner.ifname.is_some() {
            ips = held
                .iter()
                .filter(|(_, o)| o.is_legacy_of(&owner.id))
                .map(|(ip, _)| *ip)
                .collect();
        }
        self.remove_all(&ips)?;
        Ok(ips)
    }

    fn release_pool(&mut self, pool: &str) -> Result<usize, StoreError> {
        let ips: Vec<IpAddr> = self.in_pool(pool)?.into_iter().map(|(ip, _)| ip).collect();
        self.remove_all(&ips)?;
        Ok(ips.len())
    }

    fn reservations(&mut self, pool: &str) -> Result<Vec<Reservation>, StoreError> {
        Ok(self
            .in_pool(pool)?
            .into_iter()
            .map(|(ip, o)| Reservation {
                ip,
                owner: o.content(),
            })
            .collect())
    }
}
