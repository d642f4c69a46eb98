//! IP addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Field, FieldError, FieldKind, field_common_impls};

const KIND: FieldKind = FieldKind::IpAddress;
/// Longest raw input (surrounding whitespace included) looked at before rejecting.
const MAX_INPUT_BYTES: usize = 128;
/// Longest mask: a full-length IPv6 address and `/48`.
const MAX_MASK_LEN: usize = 39 + 3;

/// An IPv4 or IPv6 address.
///
/// Parsed with the standard library's strict syntax after trimming
/// surrounding whitespace. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`)
/// stay IPv6. The address bytes are kept in a wiped buffer and the
/// [`IpAddr`] is rebuilt on access.
///
/// **Canonical encoding** (stable storage format): the 4 address bytes for
/// IPv4 or the 16 address bytes for IPv6, in network order; the length tells
/// the version.
///
/// **Mask**: the enclosing network, `/24` for IPv4 (`192.0.2.0/24`) and
/// `/48` for IPv6 (`2001:db8:1::/48`).
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, IpAddress};
///
/// let v4 = IpAddress::parse(" 192.0.2.77 ")?;
/// assert_eq!(v4.mask(), "192.0.2.0/24");
/// assert_eq!(&v4.canonical_bytes()[..], &[192, 0, 2, 77]);
///
/// let v6 = IpAddress::parse("2001:db8:1:2::5")?;
/// assert_eq!(v6.mask(), "2001:db8:1::/48");
/// assert_eq!(v6.addr().to_string(), "2001:db8:1:2::5");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct IpAddress {
    /// Address bytes; only the first `len` (4 or 16) are used.
    bytes: [u8; 16],
    len: u8,
}

field_common_impls!(IpAddress);

impl IpAddress {
    /// The address.
    pub fn addr(&self) -> IpAddr {
        match self.len {
            4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&self.bytes[..4]);
                IpAddr::V4(Ipv4Addr::from(b))
            }
            _ => IpAddr::V6(Ipv6Addr::from(self.bytes)),
        }
    }

    fn from_addr(addr: IpAddr) -> Self {
        let mut out = IpAddress {
            bytes: [0; 16],
            len: 16,
        };
        match addr {
            IpAddr::V4(a) => {
                out.bytes[..4].copy_from_slice(&a.octets());
                out.len = 4;
            }
            IpAddr::V6(a) => out.bytes = a.octets(),
        }
        out
    }
}

impl From<IpAddr> for IpAddress {
    fn from(addr: IpAddr) -> Self {
        IpAddress::from_addr(addr)
    }
}

impl Field for IpAddress {
    const KIND: FieldKind = KIND;
    const MAX_CANONICAL_LEN: usize = 16;

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(FieldError::IpSyntax);
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(FieldError::Empty { kind: KIND });
        }
        s.parse::<IpAddr>()
            .map(IpAddress::from_addr)
            .map_err(|_| FieldError::IpSyntax)
    }

    fn canonical_len(&self) -> usize {
        usize::from(self.len)
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes[..usize::from(self.len)]);
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        let mut out = IpAddress {
            bytes: [0; 16],
            len: 16,
        };
        match bytes.len() {
            4 => {
                out.bytes[..4].copy_from_slice(bytes);
                out.len = 4;
            }
            16 => out.bytes.copy_from_slice(bytes),
            _ => return Err(FieldError::CanonicalLength { kind: KIND }),
        }
        Ok(out)
    }

    fn mask(&self) -> String {
        use core::fmt::Write as _;
        // Allocated once: an IPv6 address is at most 39 characters, then `/48`.
        let mut m = String::with_capacity(MAX_MASK_LEN);
        // Writing to a `String` cannot fail.
        let _ = match self.addr() {
            IpAddr::V4(a) => {
                let [x, y, z, _] = a.octets();
                write!(m, "{}/24", Ipv4Addr::new(x, y, z, 0))
            }
            IpAddr::V6(a) => {
                let s = a.segments();
                write!(m, "{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        };
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    #[test]
    fn forms() {
        let mapped = IpAddress::parse("::ffff:192.0.2.1").unwrap();
        assert!(matches!(mapped.addr(), IpAddr::V6(_)));
        assert_eq!(mapped.canonical_bytes().len(), 16);
        assert_eq!(mapped.mask(), "::/48");
        assert_eq!(IpAddress::parse("10.1.2.3").unwrap().mask(), "10.1.2.0/24");
        assert_eq!(IpAddress::parse("::1").unwrap().mask(), "::/48");
        let v4 = IpAddress::parse("192.0.2.1").unwrap();
        assert!(v4 != mapped);
        assert_eq!(format!("{v4:?}"), "IpAddress([REDACTED])");
    }

    #[test]
    fn errors() {
        for bad in [
            "1.2.3",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.4/24",
            "fe80::1%eth0",
            "::g",
            "1.2.3.4 5",
        ] {
            assert_eq!(
                IpAddress::parse(bad).err(),
                Some(FieldError::IpSyntax),
                "{bad}"
            );
        }
        assert_eq!(
            IpAddress::parse(" ").err(),
            Some(FieldError::Empty { kind: KIND })
        );
        assert_eq!(
            IpAddress::parse(&"1".repeat(200)).err(),
            Some(FieldError::IpSyntax)
        );
        for len in [0usize, 3, 5, 15, 17] {
            assert_eq!(
                IpAddress::from_canonical(&vec![0; len]).err(),
                Some(FieldError::CanonicalLength { kind: KIND })
            );
        }
    }
}
