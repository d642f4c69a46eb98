//! Device descriptions.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{
    Field, FieldError, FieldKind, Reader, field_common_impls, normalize_part, put_lp,
    replace_wiping, require_same_encoding, split_key_value,
};

const KIND: FieldKind = FieldKind::DeviceInfo;
/// Format version of the canonical encoding.
const VERSION: u8 = 1;
/// Maximum user agent length in characters.
const MAX_USER_AGENT: usize = 512;
/// Maximum OS length in characters.
const MAX_OS: usize = 64;
/// Maximum model length in characters.
const MAX_MODEL: usize = 64;
/// Longest `key=value` text accepted by `parse`, in bytes.
const MAX_TEXT_INPUT_BYTES: usize = 8 * 1024;

/// A description of a user's device: user agent, operating system and model.
///
/// All three parts are optional but at least one is required. Each part is
/// trimmed and NFC-normalized; it must be free of control characters and line
/// or paragraph separators ([`FieldError::InvalidCharacter`]) and of invisible
/// formatting characters such as bidirectional overrides, zero-width
/// characters or the byte order mark ([`FieldError::FormatCharacter`]). The
/// user agent is at most 512 characters, OS and model at most 64.
///
/// Build with [`DeviceInfo::builder`] or [`Field::parse`] on `key=value`
/// lines (keys `user_agent`, `os`, `model`; blank lines ignored). The text
/// produced by [`DeviceInfo::to_lines`] parses back to the same value.
///
/// **Canonical encoding** (stable storage format): version byte `1`, then
/// user agent, OS and model, each as a `u16` big-endian byte length followed
/// by UTF-8 bytes (length 0 for an absent part).
///
/// **Mask**: OS and model kept, user agent hidden, absent parts omitted:
/// `os=iOS 17.4 model=iPhone15,2 user_agent=***`.
///
/// # Examples
///
/// ```
/// use fieldseal::{DeviceInfo, Field};
///
/// let d = DeviceInfo::builder()
///     .os("iOS 17.4")
///     .model("iPhone15,2")
///     .user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)")
///     .build()?;
/// assert_eq!(d.mask(), "os=iOS 17.4 model=iPhone15,2 user_agent=***");
/// assert_eq!(DeviceInfo::parse(&d.to_lines())?, d);
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DeviceInfo {
    user_agent: String,
    os: String,
    model: String,
}

field_common_impls!(DeviceInfo);

/// Builder for [`DeviceInfo`]; its contents are wiped on drop.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct DeviceInfoBuilder {
    user_agent: String,
    os: String,
    model: String,
}

impl core::fmt::Debug for DeviceInfoBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DeviceInfoBuilder([REDACTED])")
    }
}

fn opt(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

impl DeviceInfo {
    /// Starts building a device description.
    pub fn builder() -> DeviceInfoBuilder {
        DeviceInfoBuilder::default()
    }

    /// The user agent string, if present.
    pub fn user_agent(&self) -> Option<&str> {
        opt(&self.user_agent)
    }

    /// The operating system, if present.
    pub fn os(&self) -> Option<&str> {
        opt(&self.os)
    }

    /// The device model, if present.
    pub fn model(&self) -> Option<&str> {
        opt(&self.model)
    }

    fn parts(&self) -> [(&'static str, &str); 3] {
        [
            ("user_agent", &self.user_agent),
            ("os", &self.os),
            ("model", &self.model),
        ]
    }

    /// Renders the `key=value` line format accepted by [`Field::parse`],
    /// absent parts omitted.
    pub fn to_lines(&self) -> Zeroizing<String> {
        let parts = self.parts();
        let cap: usize = parts.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = Zeroizing::new(String::with_capacity(cap));
        for (k, v) in parts {
            if v.is_empty() {
                continue;
            }
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

impl DeviceInfoBuilder {
    /// Sets the user agent string.
    pub fn user_agent(mut self, value: &str) -> Self {
        replace_wiping(&mut self.user_agent, value);
        self
    }

    /// Sets the operating system.
    pub fn os(mut self, value: &str) -> Self {
        replace_wiping(&mut self.os, value);
        self
    }

    /// Sets the device model.
    pub fn model(mut self, value: &str) -> Self {
        replace_wiping(&mut self.model, value);
        self
    }

    /// Validates and normalizes every part.
    ///
    /// # Errors
    /// A [`FieldError`] naming the first part and rule that failed.
    pub fn build(self) -> Result<DeviceInfo, FieldError> {
        let mut out = DeviceInfo {
            user_agent: String::new(),
            os: String::new(),
            model: String::new(),
        };
        out.user_agent = normalize_part(KIND, "user_agent", &self.user_agent, MAX_USER_AGENT)?;
        out.os = normalize_part(KIND, "os", &self.os, MAX_OS)?;
        out.model = normalize_part(KIND, "model", &self.model, MAX_MODEL)?;
        if out.user_agent.is_empty() && out.os.is_empty() && out.model.is_empty() {
            return Err(FieldError::DeviceEmpty);
        }
        Ok(out)
    }
}

impl Field for DeviceInfo {
    const KIND: FieldKind = KIND;
    const MAX_CANONICAL_LEN: usize =
        1 + (2 + MAX_USER_AGENT * 4) + (2 + MAX_OS * 4) + (2 + MAX_MODEL * 4);

    fn parse(input: &str) -> Result<Self, FieldError> {
        if input.len() > MAX_TEXT_INPUT_BYTES {
            return Err(FieldError::TooLong {
                kind: KIND,
                max: MAX_TEXT_INPUT_BYTES,
            });
        }
        let mut b = DeviceInfo::builder();
        let mut seen = [false; 3];
        for line in input.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = split_key_value(line).ok_or(FieldError::DeviceLineSyntax)?;
            let (idx, slot) = match key {
                "user_agent" => (0, &mut b.user_agent),
                "os" => (1, &mut b.os),
                "model" => (2, &mut b.model),
                _ => return Err(FieldError::DeviceUnknownKey),
            };
            if seen[idx] {
                return Err(FieldError::DeviceDuplicateKey);
            }
            seen[idx] = true;
            replace_wiping(slot, value);
        }
        b.build()
    }

    fn canonical_len(&self) -> usize {
        1 + self.parts().iter().map(|(_, v)| 2 + v.len()).sum::<usize>()
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        for (_, v) in self.parts() {
            put_lp(out, v);
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
        let b = DeviceInfo::builder()
            .user_agent(r.lp_str()?)
            .os(r.lp_str()?)
            .model(r.lp_str()?);
        r.finish()?;
        let value = b.build()?;
        require_same_encoding(&value, bytes)?;
        Ok(value)
    }

    fn mask(&self) -> String {
        let mut m = String::with_capacity(self.os.len() + self.model.len() + 32);
        for (key, value) in [("os", &self.os), ("model", &self.model)] {
            if !value.is_empty() {
                if !m.is_empty() {
                    m.push(' ');
                }
                m.push_str(key);
                m.push('=');
                m.push_str(value);
            }
        }
        if !self.user_agent.is_empty() {
            if !m.is_empty() {
                m.push(' ');
            }
            m.push_str("user_agent=***");
        }
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    #[test]
    fn parse_and_mask() {
        let d = DeviceInfo::parse("model = Pixel 8\n\nuser_agent=Mozilla/5.0 (Linux; Android 14)")
            .unwrap();
        assert_eq!(d.model(), Some("Pixel 8"));
        assert_eq!(d.os(), None);
        assert_eq!(d.mask(), "model=Pixel 8 user_agent=***");
        assert_eq!(
            d.to_lines().as_str(),
            "user_agent=Mozilla/5.0 (Linux; Android 14)\nmodel=Pixel 8"
        );
        let ua_only = DeviceInfo::builder()
            .user_agent("curl/8.5.0")
            .build()
            .unwrap();
        assert_eq!(ua_only.mask(), "user_agent=***");
        assert_eq!(format!("{ua_only:?}"), "DeviceInfo([REDACTED])");
    }

    #[test]
    fn errors() {
        let e = |s: &str| DeviceInfo::parse(s).err();
        assert_eq!(e(""), Some(FieldError::DeviceEmpty));
        assert_eq!(e("os=  \nmodel="), Some(FieldError::DeviceEmpty));
        assert_eq!(e("browser=x"), Some(FieldError::DeviceUnknownKey));
        assert_eq!(e("os=a\nos=b"), Some(FieldError::DeviceDuplicateKey));
        assert_eq!(e("just text"), Some(FieldError::DeviceLineSyntax));
        assert_eq!(
            e("os=a\u{7}b"),
            Some(FieldError::InvalidCharacter { kind: KIND })
        );
        assert_eq!(
            e(&format!("os={}", "x".repeat(65))),
            Some(FieldError::PartTooLong {
                kind: KIND,
                part: "os",
                max: 64
            })
        );
        assert!(DeviceInfo::parse(&format!("user_agent={}", "x".repeat(512))).is_ok());
        assert_eq!(
            e(&format!("user_agent={}", "x".repeat(513))),
            Some(FieldError::PartTooLong {
                kind: KIND,
                part: "user_agent",
                max: 512
            })
        );
    }

    #[test]
    fn canonical() {
        let d = DeviceInfo::builder().os("Linux").build().unwrap();
        let bytes = d.canonical_bytes();
        assert_eq!(bytes.as_slice(), b"\x01\x00\x00\x00\x05Linux\x00\x00");
        assert!(DeviceInfo::from_canonical(&bytes).unwrap() == d);
        assert_eq!(
            DeviceInfo::from_canonical(b"\x01\x00\x00\x00\x06Linux \x00\x00").err(),
            Some(FieldError::NonCanonical { kind: KIND })
        );
        assert_eq!(
            DeviceInfo::from_canonical(b"\x01\x00\x00\x00\x00\x00\x00").err(),
            Some(FieldError::DeviceEmpty)
        );
        assert_eq!(
            DeviceInfo::from_canonical(b"\x01\x00\x00\x00\x05Linux\x00\x00\x00").err(),
            Some(FieldError::CanonicalTrailingBytes { kind: KIND })
        );
        assert_eq!(
            DeviceInfo::from_canonical(b"\x01\x00\x00\x00\x05Linux\x00").err(),
            Some(FieldError::CanonicalTruncated { kind: KIND })
        );
    }
}
