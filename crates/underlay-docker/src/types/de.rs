//! Deserialisation helpers for Go's encoding: a nil map, slice or pointer is
//! written as `null`, an unset string as `""` (the api structs have no
//! `omitempty` tags).

use serde::{Deserialize, Deserializer};
use std::fmt::Display;
use std::str::FromStr;

/// `null` or absent → `T::default()`.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null`, absent or `""` → `None`; anything else must parse.
pub(crate) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A required bare IP address (Go's `net.IP.String()`).
pub(crate) fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::IpAddr, D::Error> {
    let s = String::deserialize(d)?;
    super::addr::parse_ip(&s).map_err(serde::de::Error::custom)
}

/// An optional bare IP address: `null`, absent or `""` → `None`.
pub(crate) fn opt_ip<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::IpAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => super::addr::parse_ip(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
