//! The libpq TLS settings that tokio-postgres does not parse (feature `postgres-tls`):
//! `sslrootcert` and the modes `verify-ca` and `verify-full`. They are taken out of the URL and
//! the rest goes to tokio-postgres's parser unchanged.
//!
//! The tokenizers follow tokio-postgres's own. Should they ever disagree on a malformed URL, the
//! keys stay in the text and tokio-postgres refuses it (`sslrootcert` is an unknown option to
//! it, `verify-full` an invalid mode): a failure, never a connection without the TLS asked for.

use std::fmt;
use std::path::PathBuf;

/// The `sslmode` values libpq knows, but `allow` (plaintext first, TLS as a fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, UrlError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return Err(UrlError::SslMode),
        })
    }

    /// Whether the connection must use TLS.
    pub(crate) fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

/// The TLS settings taken out of a URL; the last one of a key wins, as in tokio-postgres.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<PathBuf>,
}

/// A TLS setting in the URL could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlError {
    /// `sslmode` is not one of `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    SslMode,
    /// A percent-encoded value is not UTF-8.
    Encoding,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SslMode => "sslmode must be disable, prefer, require, verify-ca or verify-full",
            Self::Encoding => "a percent-encoded TLS setting in the URL is not UTF-8",
        })
    }
}

impl std::error::Error for UrlError {}

/// Splits `url` into the text for tokio-postgres and the TLS settings.
pub(crate) fn split(url: &str) -> Result<(String, TlsParams), UrlError> {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: &str| -> Result<bool, UrlError> {
        match key {
            "sslmode" => params.mode = Some(SslMode::parse(value)?),
            "sslrootcert" => params.root_cert = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = match ["postgresql://", "postgres://"]
        .iter()
        .find(|prefix| url.starts_with(*prefix))
    {
        Some(_) => split_url(url, &mut take)?,
        None => split_key_value(url, &mut take)?,
    };
    Ok((rest, params))
}

type Take<'a> = dyn FnMut(&str, &str) -> Result<bool, UrlError> + 'a;

/// `postgresql://[user[:password]@]host[/db][?k=v&…]`: the query starts at the first `?` after
/// the credentials (which end at the first `@`), as in tokio-postgres.
fn split_url(url: &str, take: &mut Take<'_>) -> Result<String, UrlError> {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[after_credentials..]
        .find('?')
        .map(|q| q + after_credentials)
    else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take(&decode(key)?, &decode(value)?)? {
            kept.push(pair);
        }
    }
    let mut rest = url[..q].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok(rest)
}

fn decode(s: &str) -> Result<String, UrlError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::Encoding)
}

/// `key=value key='quoted value' …`, with backslash escapes; anything malformed is kept as it is
/// for tokio-postgres to refuse.
fn split_key_value(url: &str, take: &mut Take<'_>) -> Result<String, UrlError> {
    let mut kept = Vec::new();
    let mut rest = url;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some((key, value, len)) = parameter(rest) else {
            kept.push(rest);
            break;
        };
        if !take(key, &value)? {
            kept.push(&rest[..len]);
        }
        rest = &rest[len..];
    }
    Ok(kept.join(" "))
}

/// One `key = value` at the start of `s`: the key, the unescaped value and the length read.
fn parameter(s: &str) -> Option<(&str, String, usize)> {
    let key_len = s.find(|c: char| c.is_whitespace() || c == '=')?;
    let key = &s[..key_len];
    let after_key = s[key_len..].trim_start();
    let after_eq = after_key.strip_prefix('=')?.trim_start();
    let start = s.len() - after_eq.len();
    let mut value = String::new();
    let mut chars = after_eq.char_indices();
    let quoted = after_eq.starts_with('\'');
    if quoted {
        chars.next();
    }
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        if quoted && c == '\'' {
            end = Some(i + 1);
            break;
        }
        if !quoted && c.is_whitespace() {
            end = Some(i);
            break;
        }
        if c == '\\' {
            if let Some((_, escaped)) = chars.next() {
                value.push(escaped);
            }
        } else {
            value.push(c);
        }
    }
    let end = match end {
        Some(end) => end,
        // A quoted value must be closed; a plain one may run to the end.
        None if quoted => return None,
        None => after_eq.len(),
    };
    if key.is_empty() || (!quoted && value.is_empty()) {
        return None;
    }
    Some((key, value, start + end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: Option<SslMode>, root: Option<&str>) -> TlsParams {
        TlsParams {
            mode,
            root_cert: root.map(PathBuf::from),
        }
    }

    #[test]
    fn errors_say_what_is_wrong_in_fixed_words() {
        let url = "postgresql://writer:hunter2@db.example/x?sslmode=maybe";
        let e = split(url).err();
        assert_eq!(e, Some(UrlError::SslMode));
        let shown = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            shown,
            "sslmode must be disable, prefer, require, verify-ca or verify-full"
        );
        assert_eq!(
            UrlError::Encoding.to_string(),
            "a percent-encoded TLS setting in the URL is not UTF-8"
        );
    }

    #[test]
    fn url_form() {
        let cases = [
            (
                "postgresql://u:p@h/db",
                "postgresql://u:p@h/db",
                params(None, None),
            ),
            (
                "postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                "postgresql://u:p@h/db",
                params(Some(SslMode::VerifyFull), Some("/etc/ca.pem")),
            ),
            (
                "postgres://u@h:5/db?application_name=x&sslrootcert=%2Ftmp%2Fa%20b.pem&connect_timeout=3",
                "postgres://u@h:5/db?application_name=x&connect_timeout=3",
                params(None, Some("/tmp/a b.pem")),
            ),
            (
                // A `?` in the password is not the query; the last sslmode wins.
                "postgresql://u:p?sslmode=disable@h/db?sslmode=prefer&sslmode=require",
                "postgresql://u:p?sslmode=disable@h/db",
                params(Some(SslMode::Require), None),
            ),
            (
                "postgresql://h?sslmode=verify-ca",
                "postgresql://h",
                params(Some(SslMode::VerifyCa), None),
            ),
            (
                // A password that ends in `?`: the query starts after the `@`.
                "postgresql://u:p?@h/db?sslmode=require&sslrootcert=/r.pem",
                "postgresql://u:p?@h/db",
                params(Some(SslMode::Require), Some("/r.pem")),
            ),
        ];
        for (url, rest, want) in cases {
            assert_eq!(split(url), Ok((rest.to_owned(), want)), "{url}");
        }
        assert_eq!(
            split("postgresql://h?sslmode=allow"),
            Err(UrlError::SslMode)
        );
        assert_eq!(
            split("postgresql://h?sslmode=REQUIRE"),
            Err(UrlError::SslMode)
        );
        assert_eq!(
            split("postgresql://h?sslrootcert=%ff"),
            Err(UrlError::Encoding)
        );
    }

    #[test]
    fn key_value_form() {
        let cases = [
            ("host=h user=u", "host=h user=u", params(None, None)),
            (
                "host=h sslmode = require  sslrootcert='/a b/c\\'s.pem' dbname=d",
                "host=h dbname=d",
                params(Some(SslMode::Require), Some("/a b/c's.pem")),
            ),
            (
                "sslrootcert=/x\\ y.pem host=h",
                "host=h",
                params(None, Some("/x y.pem")),
            ),
            ("sslmode=disable", "", params(Some(SslMode::Disable), None)),
            // Malformed: kept for tokio-postgres to refuse.
            (
                "host=h sslrootcert='/open",
                "host=h sslrootcert='/open",
                params(None, None),
            ),
            ("host=h sslmode=", "host=h sslmode=", params(None, None)),
        ];
        for (url, rest, want) in cases {
            assert_eq!(split(url), Ok((rest.to_owned(), want)), "{url}");
        }
        assert_eq!(split("host=h sslmode=verify"), Err(UrlError::SslMode));
    }

    #[test]
    fn the_rest_parses_as_before() {
        for url in [
            "postgresql://u:p@127.0.0.1:5432/db?sslmode=require&sslrootcert=/ca.pem&application_name=a",
            "host=127.0.0.1 port=5432 sslrootcert='/c a.pem' sslmode=verify-full user=u",
        ] {
            let (rest, _) = split(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let config: tokio_postgres::Config =
                rest.parse().unwrap_or_else(|e| panic!("{rest}: {e}"));
            assert_eq!(
                config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Prefer
            );
        }
    }
}
