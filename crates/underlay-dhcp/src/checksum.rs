//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that UDP and ICMPv6 cover.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` as big-endian 16-bit words (an odd last byte is padded with zero) to `sum`.
pub(crate) fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum = fold_once(sum + u32::from(u16::from_be_bytes([word[0], word[1]])));
    }
    if let [last] = words.remainder() {
        sum = fold_once(sum + (u32::from(*last) << 8));
    }
    sum
}

fn fold_once(sum: u32) -> u32 {
    (sum & 0xffff) + (sum >> 16)
}

/// The one's complement of the folded sum: the value to store in a checksum field.
pub(crate) fn finish(sum: u32) -> u16 {
    !(fold_once(fold_once(sum)) as u16)
}

/// Checksum of `data` alone (the IPv4 header checksum).
pub(crate) fn of(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// Sum of the IPv4 pseudo-header (RFC 768) for a `len`-byte upper-layer packet.
pub(crate) fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let sum = add(add(0, &src.octets()), &dst.octets());
    add(sum, &[0, protocol, (len >> 8) as u8, len as u8])
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub(crate) fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let sum = add(add(0, &src.octets()), &dst.octets());
    let sum = add(sum, &len.to_be_bytes());
    add(sum, &[0, 0, 0, next_header])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum (folded) to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold_once(fold_once(add(0, &data))), 0xddf2);
        assert_eq!(of(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add(0, &[0x12]), 0x1200);
        assert_eq!(add(0, &[0xff, 0xff, 0x00, 0x01]), 0x0001);
    }

    #[test]
    fn data_with_its_checksum_sums_to_zero() {
        let mut data = vec![
            0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0x00, 0x00, 0x40, 0x11, 0, 0,
        ];
        data.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let sum = of(&data);
        data[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(of(&data), 0);
    }
}
