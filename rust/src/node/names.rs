//! Node names, host names and cookies, computed as `erl` does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// The cookie as erl finds it: `~/.erlang.cookie`, else
/// `$XDG_CONFIG_HOME/erlang/.erlang.cookie` (`~/.config` when that is unset); when neither
/// exists, a new random one in `~/.erlang.cookie`, readable by its owner only.
pub fn default_cookie() -> std::io::Result<String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("HOME is not set; pass a cookie"))?;
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    cookie_in(&home, &config)
}

/// [`default_cookie`] with the home and configuration directories given.
fn cookie_in(home: &Path, config: &Path) -> std::io::Result<String> {
    let home_file = home.join(".erlang.cookie");
    for path in [
        home_file.clone(),
        config.join("erlang").join(".erlang.cookie"),
    ] {
        match std::fs::metadata(&path) {
            Ok(meta) => {
                // erl's rule and wording: a cookie others can read is no secret.
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "Cookie file {} must be accessible by owner only",
                            path.display()
                        ),
                    ));
                }
                return Ok(std::fs::read_to_string(&path)?.trim().to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
    let cookie: String = raw.iter().map(|b| (b'A' + b % 26) as char).collect();
    write_private(&home_file, &cookie)?;
    Ok(cookie)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
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

    #[test]
    fn the_cookie_file_is_found_checked_and_made_as_erl_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(crate::test_support::random_name("cookie-"));
        let (home, config) = (dir.join("home"), dir.join("config"));
        std::fs::create_dir_all(config.join("erlang")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let set_mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        // Neither file: a new one at home, 20 capital letters, mode 0400.
        let made = cookie_in(&home, &config).unwrap();
        assert!(made.len() == 20 && made.bytes().all(|b| b.is_ascii_uppercase()));
        let home_file = home.join(".erlang.cookie");
        let mode = std::fs::metadata(&home_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert_eq!(cookie_in(&home, &config).unwrap(), made);
        // Readable by others: refused with erl's words.
        set_mode(&home_file, 0o644);
        let error = cookie_in(&home, &config).unwrap_err().to_string();
        let expected = format!(
            "Cookie file {} must be accessible by owner only",
            home_file.display()
        );
        assert_eq!(error, expected);
        // No file at home: the XDG one, checked the same way.
        std::fs::remove_file(&home_file).unwrap();
        let xdg_file = config.join("erlang").join(".erlang.cookie");
        std::fs::write(&xdg_file, "XDGCOOKIE\n").unwrap();
        set_mode(&xdg_file, 0o600);
        assert_eq!(cookie_in(&home, &config).unwrap(), "XDGCOOKIE");
        set_mode(&xdg_file, 0o640);
        assert!(cookie_in(&home, &config).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
