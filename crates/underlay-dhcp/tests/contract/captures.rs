//! Frames captured from a Linux 6.x kernel, and one frame built by an independent
//! implementation, as known-good vectors.
//!
//! How they were made: two network namespaces joined by a veth pair, A = 02:aa:00:00:00:01
//! holding 10.213.0.1/24, B = 02:bb:00:00:00:02; an AF_PACKET socket in B recorded every frame.
//! Adding fd00:213::1/64 in A made A's kernel send [`KERNEL_DAD_NS`] (enhanced_dad adds the
//! RFC 7527 nonce). B then sent this crate's ARP probe for 10.213.0.1 and DAD NS for
//! fd00:213::1: A's kernel answered them with [`KERNEL_ARP_REPLY`] and [`KERNEL_NA`] (so the
//! kernel accepted both of our frames, checksums included).

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub const MAC_A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];

/// A's DAD NS for fd00:213::1 (nonce 6b3056c18228).
pub const KERNEL_DAD_NS: &str =
    "3333ff00000102aa0000000186dd6000000000203aff00000000000000000000000000000000\
ff0200000000000000000001ff0000018700296f00000000fd0002130000000000000000000000010e016b3056c18228";

/// A's answer to our DAD NS: an NA to ff02::1, Override set, target link-layer address option.
pub const KERNEL_NA: &str =
    "33330000000102aa0000000186dd6000000000203afffd000213000000000000000000000001\
ff020000000000000000000000000001880055cb20000000fd000213000000000000000000000001020102aa00000001";

/// A's ARP reply to our probe for 10.213.0.1 (42 bytes: veth does not pad).
pub const KERNEL_ARP_REPLY: &str =
    "02bb0000000202aa000000010806000108000604000202aa000000010ad5000102bb0000000200000000";

/// Built by a separate Python implementation of RFC 791/768/1071: 02:11:22:33:44:55 to
/// broadcast, 0.0.0.0:68 -> 255.255.255.255:67, TTL 64, id 0, no DF, payload
/// "underlay-dhcp odd payload" (odd length, so the checksum pads).
pub const PYTHON_UDP_FRAME: &str =
    "ffffffffffff0211223344550800450000350000000040117ab900000000ffffffff004400430021bacf\
756e6465726c61792d64686370206f6464207061796c6f6164";
