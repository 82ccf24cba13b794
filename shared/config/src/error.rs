//! Configuration errors, and the checks every section shares.

use crate::ConfigError;

/// An error naming `key`.
pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Each `(key, value)` must be above 0.
pub(crate) fn positive(values: &[(&str, u64)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(invalid(*key, "must be greater than 0")),
        None => Ok(()),
    }
}

/// `url`, if given, must be an `http(s)://` URL.
pub(crate) fn http_url(key: &str, url: Option<&String>) -> Result<(), ConfigError> {
    match url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(invalid(
            key,
            format!("'{u}' must start with http:// or https://"),
        )),
        _ => Ok(()),
    }
}

/// `addr`, if given, must be a socket address.
pub(crate) fn socket_address(key: &str, addr: Option<&String>) -> Result<(), ConfigError> {
    if let Some(a) = addr {
        a.parse::<std::net::SocketAddr>()
            .map_err(|e| invalid(key, format!("'{a}' is not a socket address: {e}")))?;
    }
    Ok(())
}
