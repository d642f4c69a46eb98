//! Generalizations: pure functions from a field value (or a time) to a coarser form.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::AnonymizeError;
use crate::field::{IdNumber, IpAddress, civil_from_days};

/// Prefix kept of an IPv4 address.
const V4_PREFIX: u8 = 24;
/// Prefix kept of an IPv6 address.
const V6_PREFIX: u8 = 48;

/// An IP network: the address with every bit after the prefix cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    network: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }
    /// The prefix length in bits (24 or 48).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The `/24` network of an IPv4 address or the `/48` network of an IPv6 address (an
/// IPv4-mapped IPv6 address stays IPv6, so all of them fall into `::/48`).
///
/// ```
/// use fieldseal::{Field, IpAddress, ip_network};
/// assert_eq!(ip_network(&IpAddress::parse("203.0.113.77")?).to_string(), "203.0.113.0/24");
/// assert_eq!(ip_network(&IpAddress::parse("2001:db8:1:2::5")?).to_string(), "2001:db8:1::/48");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
pub fn ip_network(ip: &IpAddress) -> IpNetwork {
    match ip.addr() {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o[3] = 0;
            IpNetwork {
                network: IpAddr::V4(Ipv4Addr::from(o)),
                prefix: V4_PREFIX,
            }
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o[6..].fill(0);
            IpNetwork {
                network: IpAddr::V6(Ipv6Addr::from(o)),
                prefix: V6_PREFIX,
            }
        }
    }
}

/// The birth year written in an ID number.
///
/// ```
/// use fieldseal::{Field, IdNumber, birth_year};
/// assert_eq!(birth_year(&IdNumber::parse("11010519491231002X")?), 1949);
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
pub fn birth_year(id: &IdNumber) -> u16 {
    id.birth_date().0
}

/// An age band: ages `low` to `high` years, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgeBand {
    /// Youngest age in the band.
    pub low: u16,
    /// Oldest age in the band.
    pub high: u16,
}

impl fmt::Display for AgeBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// The age band, `width` years wide and starting at 0 (`width` 10: 0-9, 10-19, …), of the
/// holder of `id` on the UTC date of `at` (Unix seconds). A birth date after that date (a
/// number issued in a time zone already on the next day) counts as age 0.
///
/// # Errors
/// [`AnonymizeError::BandWidth`] for a width of 0 or above 100.
///
/// ```
/// use fieldseal::{AgeBand, Field, IdNumber, age_band};
/// let id = IdNumber::parse("11010519491231002X")?;
/// // 2025-11-24: 75 years old.
/// assert_eq!(age_band(&id, 1_764_000_000, 10)?, AgeBand { low: 70, high: 79 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn age_band(id: &IdNumber, at: u64, width: u8) -> Result<AgeBand, AnonymizeError> {
    if !(1..=100).contains(&width) {
        return Err(AnonymizeError::BandWidth);
    }
    let (by, bm, bd) = id.birth_date();
    let (ty, tm, td) = utc_date(at);
    let mut age = ty - i64::from(by);
    if (tm, td) < (u32::from(bm), u32::from(bd)) {
        age -= 1;
    }
    let age = u16::try_from(age.max(0)).unwrap_or(u16::MAX);
    let w = u16::from(width);
    let low = age / w * w;
    Ok(AgeBand {
        low,
        high: low.saturating_add(w - 1),
    })
}

/// How much of an ID number's administrative code [`region`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegionLevel {
    /// Province (first two digits, `110000`).
    Province,
    /// Prefecture-level city (first four digits, `110100`).
    Prefecture,
    /// County-level district (all six digits, `110105`).
    County,
}

/// The administrative code of `id` cut to `level`: the digits kept, then zeros to six digits
/// (`110105` → `110000` at province level).
///
/// A foreigners' permanent residence card (starting with `9`) has the province of issue in
/// digits 2-3 and a nationality code after them: it gives its province of issue (`310000`) at
/// every level, so the nationality code never comes out.
///
/// ```
/// use fieldseal::{Field, IdNumber, RegionLevel, region};
/// let id = IdNumber::parse("11010519491231002X")?;
/// assert_eq!(region(&id, RegionLevel::Province), "110000");
/// assert_eq!(region(&id, RegionLevel::Prefecture), "110100");
/// assert_eq!(region(&id, RegionLevel::County), "110105");
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
pub fn region(id: &IdNumber, level: RegionLevel) -> String {
    let code = id.region_code().as_bytes();
    let (digits, keep) = if id.is_foreign_permanent_resident() {
        (code.get(1..3).unwrap_or_default(), 2)
    } else {
        let keep = match level {
            RegionLevel::Province => 2,
            RegionLevel::Prefecture => 4,
            RegionLevel::County => 6,
        };
        (code.get(..keep).unwrap_or_default(), keep)
    };
    let mut out = String::with_capacity(6);
    out.extend(digits.iter().map(|&b| char::from(b)));
    out.extend(std::iter::repeat_n('0', 6 - keep));
    out
}

/// How much of a date [`generalize_time`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DateGranularity {
    /// Year, month and day.
    Day,
    /// Year and month.
    Month,
    /// Year only.
    Year,
}

/// A calendar date with the parts below its granularity dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GeneralizedDate {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month 1-12, unless generalized to the year.
    pub month: Option<u8>,
    /// Day 1-31, only at day granularity.
    pub day: Option<u8>,
}

impl fmt::Display for GeneralizedDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

/// The UTC date of `unix_secs` (a visit time, a sealed-at time), cut to `granularity`.
///
/// ```
/// use fieldseal::{DateGranularity, generalize_time};
/// assert_eq!(generalize_time(1_764_000_000, DateGranularity::Day).to_string(), "2025-11-24");
/// assert_eq!(generalize_time(1_764_000_000, DateGranularity::Month).to_string(), "2025-11");
/// ```
pub fn generalize_time(unix_secs: u64, granularity: DateGranularity) -> GeneralizedDate {
    let (year, m, d) = utc_date(unix_secs);
    // Month and day are 1-12 and 1-31 by construction.
    let month = u8::try_from(m).unwrap_or_default();
    let day = u8::try_from(d).unwrap_or_default();
    match granularity {
        DateGranularity::Day => GeneralizedDate {
            year,
            month: Some(month),
            day: Some(day),
        },
        DateGranularity::Month => GeneralizedDate {
            year,
            month: Some(month),
            day: None,
        },
        DateGranularity::Year => GeneralizedDate {
            year,
            month: None,
            day: None,
        },
    }
}

fn utc_date(unix_secs: u64) -> (i64, u32, u32) {
    // u64::MAX / 86_400 fits in i64.
    civil_from_days(i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;
    use proptest::prelude::*;

    fn id(s: &str) -> IdNumber {
        IdNumber::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An ID number with this region and birth date (check digit computed).
    fn id_with(region: &str, y: u16, m: u8, d: u8, seq: u16) -> IdNumber {
        let first17 = format!("{region}{y:04}{m:02}{d:02}{seq:03}");
        let check = crate::field::id_check_char(first17.as_bytes());
        id(&format!("{first17}{}", char::from(check)))
    }

    #[test]
    fn ip_networks() {
        let n = ip_network(&IpAddress::parse("192.0.2.255").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!(n.prefix(), 24);
        let n = ip_network(
            &IpAddress::parse("2001:db8:abcd:12:ffff::1").unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(n.to_string(), "2001:db8:abcd::/48");
        let n = ip_network(&IpAddress::parse("::ffff:192.0.2.1").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(n.to_string(), "::/48");
    }

    #[test]
    fn ages_and_bands() {
        let x = id("11010519491231002X");
        assert_eq!(birth_year(&x), 1949);
        // 2025-12-30T00:00Z: still 75; 2025-12-31T00:00Z: 76.
        let dec30 = 1_767_052_800;
        assert_eq!(age_band(&x, dec30, 1), Ok(AgeBand { low: 75, high: 75 }));
        assert_eq!(
            age_band(&x, dec30 + 86_400, 1),
            Ok(AgeBand { low: 76, high: 76 })
        );
        assert_eq!(age_band(&x, dec30, 10), Ok(AgeBand { low: 70, high: 79 }));
        assert_eq!(age_band(&x, dec30, 100), Ok(AgeBand { low: 0, high: 99 }));
        assert_eq!(age_band(&x, dec30, 0), Err(AnonymizeError::BandWidth));
        assert_eq!(age_band(&x, dec30, 101), Err(AnonymizeError::BandWidth));
        // Born after the date asked about: age 0.
        let young = id_with("110105", 2000, 1, 1, 1);
        assert_eq!(age_band(&young, 0, 5), Ok(AgeBand { low: 0, high: 4 }));
        assert_eq!(age_band(&x, 0, 5), Ok(AgeBand { low: 20, high: 24 }));
    }

    #[test]
    fn regions() {
        let x = id("11010519491231002X");
        assert_eq!(region(&x, RegionLevel::Province), "110000");
        assert_eq!(region(&x, RegionLevel::Prefecture), "110100");
        assert_eq!(region(&x, RegionLevel::County), "110105");
        // Foreigners' card: `9`, province 31, nationality 840: only the province comes out.
        let f = id_with("931840", 1980, 1, 1, 1);
        assert!(f.is_foreign_permanent_resident());
        for level in [
            RegionLevel::Province,
            RegionLevel::Prefecture,
            RegionLevel::County,
        ] {
            assert_eq!(region(&f, level), "310000");
        }
        let hk = id_with("810000", 1990, 6, 1, 5);
        assert_eq!(region(&hk, RegionLevel::County), "810000");
    }

    #[test]
    fn times() {
        assert_eq!(
            generalize_time(0, DateGranularity::Day).to_string(),
            "1970-01-01"
        );
        assert_eq!(
            generalize_time(951_782_400, DateGranularity::Day).to_string(),
            "2000-02-29"
        );
        assert_eq!(
            generalize_time(951_782_400, DateGranularity::Month).to_string(),
            "2000-02"
        );
        assert_eq!(
            generalize_time(951_782_400, DateGranularity::Year).to_string(),
            "2000"
        );
        // The last second of a day stays on it.
        assert_eq!(
            generalize_time(951_868_799, DateGranularity::Day).to_string(),
            "2000-02-29"
        );
        let _ = generalize_time(u64::MAX, DateGranularity::Day);
    }

    proptest! {
        #[test]
        fn ipv4_network_keeps_exactly_24_bits(a: [u8; 4]) {
            let ip = IpAddress::from(IpAddr::V4(Ipv4Addr::from(a)));
            let n = ip_network(&ip);
            prop_assert_eq!(n.network(), IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], 0)));
            // Idempotent: the network of the network is itself.
            prop_assert_eq!(ip_network(&IpAddress::from(n.network())), n);
        }

        #[test]
        fn ipv6_network_keeps_exactly_48_bits(a: [u8; 16]) {
            let ip = IpAddress::from(IpAddr::V6(Ipv6Addr::from(a)));
            let n = ip_network(&ip);
            let IpAddr::V6(net) = n.network() else { panic!("stays IPv6") };
            let o = net.octets();
            prop_assert_eq!(&o[..6], &a[..6]);
            prop_assert!(o[6..].iter().all(|&b| b == 0));
            prop_assert_eq!(n.prefix(), 48);
        }

        #[test]
        fn age_band_contains_the_age(
            y in 1970u16..2020, m in 1u8..=12, d in 1u8..=28,
            days_later in 0u64..60_000, width in 1u8..=100,
        ) {
            let x = id_with("440305", y, m, d, 123);
            let born = 86_400 * u64::try_from(days_from_civil(i64::from(y), u32::from(m), u32::from(d)))
                .unwrap_or_else(|_| panic!("after 1970 only"));
            let at = born + days_later * 86_400;
            let band = age_band(&x, at, width).unwrap_or_else(|e| panic!("{e}"));
            // The age by counting birthdays.
            let (ty, tm, td) = utc_date(at);
            let mut age = ty - i64::from(y);
            if (tm, td) < (u32::from(m), u32::from(d)) { age -= 1; }
            let age = u16::try_from(age).unwrap_or_else(|_| panic!("not negative"));
            prop_assert!(band.low <= age && age <= band.high);
            prop_assert_eq!(band.high - band.low + 1, u16::from(width));
            prop_assert_eq!(band.low % u16::from(width), 0);
        }

        #[test]
        fn region_is_a_prefix_then_zeros(seq in 0u16..1000, level in 0usize..3) {
            let x = id_with("440305", 1985, 7, 9, seq);
            let lv = [RegionLevel::Province, RegionLevel::Prefecture, RegionLevel::County][level];
            let r = region(&x, lv);
            let keep = [2, 4, 6][level];
            prop_assert_eq!(r.len(), 6);
            prop_assert_eq!(&r[..keep], &"440305"[..keep]);
            prop_assert!(r[keep..].bytes().all(|b| b == b'0'));
        }

        #[test]
        fn time_generalization_agrees_across_granularities(secs: u64) {
            let day = generalize_time(secs, DateGranularity::Day);
            let month = generalize_time(secs, DateGranularity::Month);
            let year = generalize_time(secs, DateGranularity::Year);
            prop_assert_eq!(month.year, day.year);
            prop_assert_eq!(month.month, day.month);
            prop_assert_eq!(year.year, day.year);
            prop_assert!(month.day.is_none() && year.month.is_none());
            // Every second of one UTC day gives the same day.
            let start = secs - secs % 86_400;
            prop_assert_eq!(generalize_time(start, DateGranularity::Day), day);
            prop_assert_eq!(generalize_time(start + 86_399, DateGranularity::Day), day);
        }
    }

    /// Days since 1970-01-01 of a civil date (inverse of `civil_from_days`).
    fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = i64::from((m + 9) % 12);
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}
