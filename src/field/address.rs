//! Structured postal addresses.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{
    Field, FieldError, FieldKind, Reader, field_common_impls, normalize_part, put_lp,
    replace_wiping, require_same_encoding, split_key_value,
};

const KIND: FieldKind = FieldKind::PostalAddress;
/// Format version of the canonical encoding.
const VERSION: u8 = 1;
/// Maximum characters of each text part.
const MAX_PART_CHARS: usize = 128;
/// Maximum number of street lines.
const MAX_STREETS: usize = 3;
/// Postal code length range in characters (ASCII only).
const POSTAL_MIN: usize = 3;
const POSTAL_MAX: usize = 10;
/// Longest `key=value` text accepted by `parse`, in bytes.
const MAX_TEXT_INPUT_BYTES: usize = 16 * 1024;

/// ISO 3166-1 alpha-2 assigned codes.
const COUNTRIES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A structured postal address.
///
/// Parts: `country` (required ISO 3166-1 alpha-2 code, accepted in any case
/// and stored upper-case), optional `region`, `city` and `district`, 1 to 3
/// street lines (required) and an optional postal code (3 to 10 ASCII
/// letters, digits, spaces or hyphens). Text parts are trimmed,
/// NFC-normalized and at most 128 characters; they must be free of control
/// characters and line or paragraph separators
/// ([`FieldError::InvalidCharacter`]) and of invisible formatting characters
/// such as bidirectional overrides, zero-width characters or the byte order
/// mark ([`FieldError::FormatCharacter`]), which could otherwise disguise the
/// mask. An empty optional part counts as absent.
///
/// Build with [`PostalAddress::builder`] or [`Field::parse`] on `key=value`
/// lines (keys `country`, `region`, `city`, `district`, `street`
/// (repeatable, order kept) and `postal_code`; blank lines ignored). The
/// text produced by [`PostalAddress::to_lines`] parses back to the same value.
///
/// **Canonical encoding** (stable storage format): version byte `1`; then
/// country, region, city, district and postal code, each as a `u16`
/// big-endian byte length followed by UTF-8 bytes (length 0 for an absent
/// part); then the street count as one byte, then each street line as a
/// `u16` big-endian length and UTF-8 bytes.
///
/// **Mask**: country, region and city (those present), then `***` for the
/// rest: `CN, 北京市, 北京市, ***`.
///
/// # Examples
///
/// ```
/// use fieldseal::{Field, PostalAddress};
///
/// let a = PostalAddress::builder()
///     .country("CN")
///     .region("北京市")
///     .city("北京市")
///     .district("朝阳区")
///     .street_line("建国路88号")
///     .postal_code("100022")
///     .build()?;
/// assert_eq!(a.mask(), "CN, 北京市, 北京市, ***");
/// let text = a.to_lines();
/// assert_eq!(PostalAddress::parse(&text)?, a);
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PostalAddress {
    country: String,
    region: String,
    city: String,
    district: String,
    streets: Vec<String>,
    postal_code: String,
}

field_common_impls!(PostalAddress);

/// Builder for [`PostalAddress`]; its contents are wiped on drop.
///
/// Setting a part twice keeps the last value. Validation happens in
/// [`PostalAddressBuilder::build`].
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct PostalAddressBuilder {
    country: String,
    region: String,
    city: String,
    district: String,
    streets: Vec<String>,
    postal_code: String,
}

impl core::fmt::Debug for PostalAddressBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PostalAddressBuilder([REDACTED])")
    }
}

fn opt(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

impl PostalAddress {
    /// Starts building an address.
    pub fn builder() -> PostalAddressBuilder {
        PostalAddressBuilder::default()
    }

    /// ISO 3166-1 alpha-2 country code, upper-case.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// Region (province, state, ...), if present.
    pub fn region(&self) -> Option<&str> {
        opt(&self.region)
    }

    /// City, if present.
    pub fn city(&self) -> Option<&str> {
        opt(&self.city)
    }

    /// District, if present.
    pub fn district(&self) -> Option<&str> {
        opt(&self.district)
    }

    /// Street lines, in order (1 to 3).
    pub fn street_lines(&self) -> &[String] {
        &self.streets
    }

    /// Postal code, if present.
    pub fn postal_code(&self) -> Option<&str> {
        opt(&self.postal_code)
    }

    /// Renders the `key=value` line format accepted by [`Field::parse`],
    /// one part per line, absent parts omitted.
    pub fn to_lines(&self) -> Zeroizing<String> {
        let singles = [
            ("country", self.country.as_str()),
            ("region", self.region.as_str()),
            ("city", self.city.as_str()),
            ("district", self.district.as_str()),
        ];
        let streets = self.streets.iter().map(|s| ("street", s.as_str()));
        let parts = singles
            .into_iter()
            .chain(streets)
            .chain([("postal_code", self.postal_code.as_str())])
            .filter(|(_, v)| !v.is_empty());
        let cap: usize = parts.clone().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = Zeroizing::new(String::with_capacity(cap));
        for (k, v) in parts {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

fn normalize_country(raw: &str) -> Result<String, FieldError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(FieldError::AddressMissingPart { part: "country" });
    }
    if t.len() != 2 {
        return Err(FieldError::AddressCountry);
    }
    // Upper-cased on the stack, so a rejected value leaves no heap copy behind.
    let mut upper = [0u8; 2];
    upper.copy_from_slice(t.as_bytes());
    upper.make_ascii_uppercase();
    COUNTRIES
        .iter()
        .find(|c| c.as_bytes() == upper)
        .map(|c| String::from(*c))
        .ok_or(FieldError::AddressCountry)
}

fn normalize_postal_code(raw: &str) -> Result<String, FieldError> {
    if raw.len() > 64 {
        return Err(FieldError::AddressPostalCode);
    }
    let t = raw.trim();
    if t.is_empty() {
        return Ok(String::new());
    }
    let ok_chars = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-');
    if !ok_chars || !(POSTAL_MIN..=POSTAL_MAX).contains(&t.len()) {
        return Err(FieldError::AddressPostalCode);
    }
    Ok(String::from(t))
}

impl PostalAddressBuilder {
    /// Sets the country (ISO 3166-1 alpha-2, any case).
    pub fn country(mut self, value: &str) -> Self {
        replace_wiping(&mut self.country, value);
        self
    }

    /// Sets the region (province, state, ...).
    pub fn region(mut self, value: &str) -> Self {
        replace_wiping(&mut self.region, value);
        self
    }

    /// Sets the city.
    pub fn city(mut self, value: &str) -> Self {
        replace_wiping(&mut self.city, value);
        self
    }

    /// Sets the district.
    pub fn district(mut self, value: &str) -> Self {
        replace_wiping(&mut self.district, value);
        self
    }

    /// Appends a street line (1 to 3 are required).
    pub fn street_line(mut self, value: &str) -> Self {
        self.streets.push(String::from(value));
        self
    }

    /// Sets the postal code.
    pub fn postal_code(mut self, value: &str) -> Self {
        replace_wiping(&mut self.postal_code, value);
        self
    }

    /// Validates and normalizes every part.
    ///
    /// # Errors
    /// A [`FieldError`] naming the first part and rule that failed.
    pub fn build(self) -> Result<PostalAddress, FieldError> {
        let country = normalize_country(&self.country)?;
        let mut out = PostalAddress {
            country,
            region: String::new(),
            city: String::new(),
            district: String::new(),
            streets: Vec::new(),
            postal_code: String::new(),
        };
        out.region = normalize_part(KIND, "region", &self.region, MAX_PART_CHARS)?;
        out.city = normalize_part(KIND, "city", &self.city, MAX_PART_CHARS)?;
        out.district = normalize_part(KIND, "district", &self.district, MAX_PART_CHARS)?;
        if self.streets.is_empty() {
            return Err(FieldError::AddressMissingPart { part: "street" });
        }
        if self.streets.len() > MAX_STREETS {
            return Err(FieldError::AddressTooManyStreets);
        }
        out.streets.reserve_exact(self.streets.len());
        for raw in &self.streets {
            let line = normalize_part(KIND, "street", raw, MAX_PART_CHARS)?;
            if line.is_empty() {
                return Err(FieldError::AddressMissingPart { part: "street" });
            }
            out.streets.push(line);
        }
        out.postal_code = normalize_postal_code(&self.postal_code)?;
        Ok(out)
    }
}

impl Field for PostalAddress {
    const KIND: FieldKind = KIND;
    const MAX_CANONICAL_LEN: usize = 1
        + (2 + 2)
        + 3 * (2 + MAX_PART_CHARS * 4)
        + (2 + POSTAL_MAX)
        + 1
        + MAX_STREETS * (2 + MAX_PART_CHARS * 4);

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_TEXT_INPUT_BYTES {
            return Err(FieldError::TooLong {
                kind: KIND,
                max: MAX_TEXT_INPUT_BYTES,
            });
        }
        let mut b = PostalAddress::builder();
        let mut seen = [false; 5];
        for line in input.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = split_key_value(line).ok_or(FieldError::AddressLineSyntax)?;
            let (idx, slot) = match key {
                "street" => {
                    if b.streets.len() >= MAX_STREETS {
                        return Err(FieldError::AddressTooManyStreets);
                    }
                    b.streets.push(String::from(value));
                    continue;
                }
                "country" => (0, &mut b.country),
                "region" => (1, &mut b.region),
                "city" => (2, &mut b.city),
                "district" => (3, &mut b.district),
                "postal_code" => (4, &mut b.postal_code),
                _ => return Err(FieldError::AddressUnknownKey),
            };
            if seen[idx] {
                return Err(FieldError::AddressDuplicateKey);
            }
            seen[idx] = true;
            replace_wiping(slot, value);
        }
        b.build()
    }

    fn canonical_len(&self) -> usize {
        let parts = [
            &self.country,
            &self.region,
            &self.city,
            &self.district,
            &self.postal_code,
        ];
        1 + parts.iter().map(|p| 2 + p.len()).sum::<usize>()
            + 1
            + self.streets.iter().map(|s| 2 + s.len()).sum::<usize>()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_lp(out, &self.country);
        put_lp(out, &self.region);
        put_lp(out, &self.city);
        put_lp(out, &self.district);
        put_lp(out, &self.postal_code);
        // At most MAX_STREETS by construction.
        out.push(u8::try_from(self.streets.len()).unwrap_or(u8::MAX));
        for s in &self.streets {
            put_lp(out, s);
        }
    }

    fn from_canonical(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > Self::MAX_CANONICAL_LEN {
            return Err(FieldError::TooLong {
                kind: KIND,
                max: Self::MAX_CANONICAL_LEN,
            });
        }
        let mut r = Reader::new(bytes, KIND);
        if r.u8()? != VERSION {
            return Err(FieldError::CanonicalVersion { kind: KIND });
        }
        let mut b = PostalAddress::builder()
            .country(r.lp_str()?)
            .region(r.lp_str()?)
            .city(r.lp_str()?)
            .district(r.lp_str()?)
            .postal_code(r.lp_str()?);
        let count = usize::from(r.u8()?);
        if count > MAX_STREETS {
            return Err(FieldError::AddressTooManyStreets);
        }
        for _ in 0..count {
            b = b.street_line(r.lp_str()?);
        }
        r.finish()?;
        let value = b.build()?;
        require_same_encoding(&value, bytes)?;
        Ok(value)
    }

    fn mask(&self) -> String {
        let mut m =
            String::with_capacity(self.country.len() + self.region.len() + self.city.len() + 12);
        m.push_str(&self.country);
        for part in [&self.region, &self.city] {
            if !part.is_empty() {
                m.push_str(", ");
                m.push_str(part);
            }
        }
        m.push_str(", ***");
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    fn sample() -> PostalAddress {
        PostalAddress::builder()
            .country("cn")
            .region(" 北京市 ")
            .city("北京市")
            .district("朝阳区")
            .street_line("建国路88号")
            .street_line("SOHO 现代城 A 座")
            .postal_code("100022")
            .build()
            .unwrap()
    }

    #[test]
    fn countries_sorted_unique() {
        for w in COUNTRIES.windows(2) {
            assert!(w[0] < w[1]);
        }
    }

    #[test]
    fn accessors_and_lines() {
        let a = sample();
        assert_eq!(a.country(), "CN");
        assert_eq!(a.region(), Some("北京市"));
        assert_eq!(a.district(), Some("朝阳区"));
        assert_eq!(a.street_lines().len(), 2);
        assert_eq!(a.postal_code(), Some("100022"));
        assert_eq!(
            a.to_lines().as_str(),
            "country=CN\nregion=北京市\ncity=北京市\ndistrict=朝阳区\n\
             street=建国路88号\nstreet=SOHO 现代城 A 座\npostal_code=100022"
        );
        let again = PostalAddress::parse(&a.to_lines()).unwrap();
        assert!(again == a);
        assert_eq!(a.mask(), "CN, 北京市, 北京市, ***");
        assert_eq!(format!("{a:?}"), "PostalAddress([REDACTED])");
    }

    #[test]
    fn minimal_and_mask() {
        let a = PostalAddress::parse("\n country = SG \n\nstreet=1 Fusionopolis Way\n").unwrap();
        assert_eq!(a.region(), None);
        assert_eq!(a.postal_code(), None);
        assert_eq!(a.mask(), "SG, ***");
    }

    #[test]
    fn parse_errors() {
        let e = |s: &str| PostalAddress::parse(s).err();
        assert_eq!(
            e("street=x"),
            Some(FieldError::AddressMissingPart { part: "country" })
        );
        assert_eq!(
            e("country=CN"),
            Some(FieldError::AddressMissingPart { part: "street" })
        );
        assert_eq!(
            e("country=CN\nstreet=  "),
            Some(FieldError::AddressMissingPart { part: "street" })
        );
        assert_eq!(e("country=XX\nstreet=a"), Some(FieldError::AddressCountry));
        assert_eq!(e("country=CHN\nstreet=a"), Some(FieldError::AddressCountry));
        assert_eq!(
            e("country=CN\ncountry=CN\nstreet=a"),
            Some(FieldError::AddressDuplicateKey)
        );
        assert_eq!(
            e("country=CN\nstreet=a\nzip=1"),
            Some(FieldError::AddressUnknownKey)
        );
        assert_eq!(
            e("country=CN\nstreet a"),
            Some(FieldError::AddressLineSyntax)
        );
        assert_eq!(
            e("country=CN\nstreet=a\nstreet=b\nstreet=c\nstreet=d"),
            Some(FieldError::AddressTooManyStreets)
        );
        assert_eq!(
            e("country=CN\nstreet=a\npostal_code=1_000"),
            Some(FieldError::AddressPostalCode)
        );
        assert_eq!(
            e("country=CN\nstreet=a\npostal_code=12"),
            Some(FieldError::AddressPostalCode)
        );
        assert_eq!(
            e("country=CN\nstreet=a\rb"),
            Some(FieldError::InvalidCharacter { kind: KIND })
        );
        let long = format!("country=CN\nstreet={}", "x".repeat(129));
        assert_eq!(
            e(&long),
            Some(FieldError::PartTooLong {
                kind: KIND,
                part: "street",
                max: 128
            })
        );
    }

    #[test]
    fn canonical_layout_and_strictness() {
        let a = PostalAddress::parse("country=US\nstreet=1 Main St\npostal_code=12345").unwrap();
        let bytes = a.canonical_bytes();
        let mut expected = vec![1u8, 0, 2, b'U', b'S', 0, 0, 0, 0, 0, 0, 0, 5];
        expected.extend_from_slice(b"12345");
        expected.extend_from_slice(&[1, 0, 9]);
        expected.extend_from_slice(b"1 Main St");
        assert_eq!(bytes.as_slice(), expected.as_slice());
        assert!(PostalAddress::from_canonical(&expected).unwrap() == a);

        let mut trailing = expected.clone();
        trailing.push(0);
        assert_eq!(
            PostalAddress::from_canonical(&trailing).err(),
            Some(FieldError::CanonicalTrailingBytes { kind: KIND })
        );
        let mut version = expected.clone();
        version[0] = 2;
        assert_eq!(
            PostalAddress::from_canonical(&version).err(),
            Some(FieldError::CanonicalVersion { kind: KIND })
        );
        assert_eq!(
            PostalAddress::from_canonical(&expected[..expected.len() - 1]).err(),
            Some(FieldError::CanonicalTruncated { kind: KIND })
        );
        let mut lower = expected.clone();
        lower[3] = b'u';
        assert_eq!(
            PostalAddress::from_canonical(&lower).err(),
            Some(FieldError::NonCanonical { kind: KIND })
        );
        let mut padded = expected.clone();
        padded[21] = b' '; // "1 Main St" -> "  Main St" would be trimmed
        assert_eq!(
            PostalAddress::from_canonical(&padded).err(),
            Some(FieldError::NonCanonical { kind: KIND })
        );
        assert_eq!(
            PostalAddress::from_canonical(&[]).err(),
            Some(FieldError::CanonicalTruncated { kind: KIND })
        );
    }
}
