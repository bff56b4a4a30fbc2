use std::net::IpAddr;

/// A reserved address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: IpAddr,
    pub owner: String,
}

/// A store failure (database, file system, remote store).
#[derive(Debug, thiserror::Error)]
#[error("reservation store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError(err.to_string())
    }
}

/// Where reservations live.
///
/// `reserve` is the only write that must be atomic: it succeeds for exactly one caller per
/// address. Everything else is a look-up or a release. A remote backend implements `reserve` as
/// a compare-and-swap ("create if absent") transaction.
pub trait Store {
    /// Reserves `ip` (at `offset` in its pool's subnet) for `owner`; `Ok(false)` when somebody
    /// already holds it.
    fn reserve(
        &mut self,
        pool: &str,
        ip: IpAddr,
        offset: u128,
        owner: &str,
    ) -> Result<bool, StoreError>;
    /// Who holds `ip`, if anybody.
    fn owner_of(&mut self, pool: &str, ip: IpAddr) -> Result<Option<String>, StoreError>;
    /// The lowest offset in `lo..=hi` that looks free (a hint: `reserve` decides).
    fn first_free(&mut self, pool: &str, lo: u128, hi: u128) -> Result<Option<u128>, StoreError>;
    /// Releases every address `owner` holds in `pool` and returns them.
    fn release_owner(&mut self, pool: &str, owner: &str) -> Result<Vec<IpAddr>, StoreError>;
    /// Releases the whole pool.
    fn release_pool(&mut self, pool: &str) -> Result<usize, StoreError>;
    /// Every reservation of `pool`, in address order.
    fn reservations(&mut self, pool: &str) -> Result<Vec<Reservation>, StoreError>;
}
