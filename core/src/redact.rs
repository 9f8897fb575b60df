//! The one redaction rule: how a URL that may carry credentials is shown to humans (in
//! `Debug`, error messages, logs, every binding's `repr` and the CLI).

/// Query parameters whose values are secrets wherever they appear.
const SECRET_PARAMS: [&str; 4] = ["password", "pass", "token", "auth"];

/// `url` with its credentials replaced by `***`: the whole user-info part
/// (`redis://user:pw@host` → `redis://***@host`) and the values of `password`, `pass`,
/// `token` and `auth` query parameters. A string that is not a URL is redacted whole
/// when it contains `@`, since it cannot be parsed to tell what is secret.
///
/// ```
/// use polycache::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@h:6379/0"), "redis://***@h:6379/0");
/// assert_eq!(redact_url("redis+shards://u:p@a:1,b:2?weights=1,2"), "redis+shards://***@a:1,b:2?weights=1,2");
/// assert_eq!(redact_url("redis://h?password=x&ttl=1"), "redis://h?password=***&ttl=1");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains('@') {
            "***".to_owned()
        } else {
            url.to_owned()
        };
    };
    // The user info ends at the last `@`: passwords may hold `/`, `?` or `#` unescaped,
    // and redacting too much (a `@` inside the query) is safe where too little is not.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    if userinfo {
        out.push_str("***@");
    }
    out.push_str(location);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_never_survive() {
        for (url, shown) in [
            ("memory://", "memory://"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@h:1", "redis://***@h:1"),
            ("redis://user:pw@h:1/2", "redis://***@h:1/2"),
            ("rediss://user@h", "rediss://***@h"),
            ("redis://:p/a?s#w@h:1", "redis://***@h:1"),
            ("redis://:p@w@h:1", "redis://***@h:1"),
            ("redis+cluster://:pw@a:1,b:2", "redis+cluster://***@a:1,b:2"),
            ("redis://h?namespace=a@b", "redis://***@b"),
            ("redis://h?Password=x&ttl=1", "redis://h?Password=***&ttl=1"),
            ("not a url with pw@h", "***"),
            ("plain", "plain"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
