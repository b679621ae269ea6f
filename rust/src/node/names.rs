//! Node names, host names and cookies, computed as `erl` does.

use std::path::PathBuf;

/// The short host name, as `erl -sname` uses it: the host name up to its first dot.
pub fn short_hostname() -> String {
    let full = hostname();
    full.split('.').next().unwrap_or("localhost").to_string()
}

/// The machine's host name (gethostname(2)).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A full node name from what the user gave: `alive` becomes `alive@<short host>`, and a name
/// with `@` is kept. Returns (full name, long-names mode).
pub fn full_name(name: &str) -> Result<(String, bool), String> {
    match name.split_once('@') {
        None => {
            check_alive(name)?;
            Ok((format!("{name}@{}", short_hostname()), false))
        }
        Some((alive, host)) => {
            check_alive(alive)?;
            if host.is_empty() {
                return Err(format!("node name {name:?} has an empty host part"));
            }
            Ok((name.to_string(), host.contains('.')))
        }
    }
}

fn check_alive(alive: &str) -> Result<(), String> {
    if alive.is_empty() {
        return Err("node name is empty".into());
    }
    if alive.len() > 255 {
        return Err("node name is longer than 255 bytes".into());
    }
    if !alive
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "node name {alive:?} may use only letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// The alive part and host of a full node name.
pub fn split(full: &str) -> (&str, &str) {
    full.split_once('@').unwrap_or((full, ""))
}

/// The cookie from `~/.erlang.cookie`, created with a random value if missing, as erl does.
pub fn default_cookie() -> std::io::Result<String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("HOME is not set; pass a cookie"))?;
    let path = home.join(".erlang.cookie");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 20];
            getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
            let cookie: String = raw.iter().map(|b| (b'A' + b % 26) as char).collect();
            write_private(&path, &cookie)?;
            Ok(cookie)
        }
        Err(e) => Err(e),
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_name_gets_short_host() {
        let (name, long) = full_name("py").unwrap();
        assert!(name.starts_with("py@"));
        assert!(!name[3..].contains('.'));
        assert!(!long);
    }

    #[test]
    fn long_names_are_kept() {
        assert_eq!(
            full_name("py@127.0.0.1").unwrap(),
            ("py@127.0.0.1".to_string(), true)
        );
        assert_eq!(
            full_name("py@host.example.com").unwrap(),
            ("py@host.example.com".to_string(), true)
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(full_name("").is_err());
        assert!(full_name("a b").is_err());
        assert!(full_name("py@").is_err());
    }
}
