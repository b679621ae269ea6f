//! The `-ssl_dist_optfile` an Erlang cluster's nodes share: one Erlang term,
//! `[{server, Opts}, {client, Opts}]`, read into the two [`TlsRole`]s.
//! <https://www.erlang.org/doc/apps/ssl/ssl_distribution.html>
//!
//! Every option we take is one OTP's nodes understand the same way; any other option is an
//! error that names it, never silently ignored.

use super::tls::{TlsError, TlsRole, TlsVersion};
use crate::etf::{parse_term, Term};
use std::path::{Path, PathBuf};

/// The options a section may hold.
const KNOWN: &[&str] = &[
    "certfile",
    "keyfile",
    "cacertfile",
    "verify",
    "fail_if_no_peer_cert",
    "versions",
    "server_name_indication",
];

/// Reads an optfile: the server role (accepting) and the client role (dialing).
pub fn read(path: &Path) -> Result<(TlsRole, TlsRole), TlsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|TlsError(why)| TlsError(format!("{}: {why}", path.display())))
}

/// [`read`] on the file's text.
pub fn parse(text: &str) -> Result<(TlsRole, TlsRole), TlsError> {
    let term = parse_term(text).map_err(|e| TlsError(e.to_string()))?;
    let sections = as_list(&term).ok_or_else(|| {
        TlsError("expected a list [{server, Options}, {client, Options}]".to_string())
    })?;
    let (mut server, mut client) = (None, None);
    for section in &sections {
        match section {
            Term::Tuple(pair) if pair.len() == 2 => {
                let options = as_list(&pair[1]).ok_or_else(|| {
                    TlsError(format!("the options of {} are not a list", show(&pair[0])))
                })?;
                match atom(&pair[0]) {
                    Some("server") => server = Some(role("server", &options)?),
                    Some("client") => client = Some(role("client", &options)?),
                    _ => {
                        return Err(TlsError(format!(
                            "unknown section {} (expected server or client)",
                            show(&pair[0])
                        )))
                    }
                }
            }
            other => {
                return Err(TlsError(format!(
                    "expected {{server, Options}} or {{client, Options}}, found {}",
                    show(other)
                )))
            }
        }
    }
    match (server, client) {
        (Some(server), Some(client)) => Ok((server, client)),
        (None, _) => Err(TlsError("no server section".to_string())),
        (_, None) => Err(TlsError("no client section".to_string())),
    }
}

/// One section's options. Unset, `verify` is on (stricter than OTP's server default, as OTP
/// 26's client default) and a server then requires a client certificate.
fn role(section: &str, options: &[Term]) -> Result<TlsRole, TlsError> {
    let bad = |what: String| TlsError(format!("{section}: {what}"));
    let mut certfile = None;
    let mut keyfile = None;
    let mut cafile = None;
    let mut verify = true;
    let mut fail_if_no_peer_cert = None;
    let mut versions = Vec::new();
    let mut server_name = None;
    for option in options {
        let (name, value) = match option {
            Term::Tuple(pair) if pair.len() == 2 => match atom(&pair[0]) {
                Some(name) => (name, &pair[1]),
                None => return Err(bad(format!("bad option {}", show(option)))),
            },
            _ => return Err(bad(format!("bad option {}", show(option)))),
        };
        let path = || {
            text(value)
                .map(PathBuf::from)
                .ok_or_else(|| bad(format!("{name} must be a file name, not {}", show(value))))
        };
        match name {
            "certfile" => certfile = Some(path()?),
            "keyfile" => keyfile = Some(path()?),
            "cacertfile" => cafile = Some(path()?),
            "verify" => {
                verify = match atom(value) {
                    Some("verify_peer") => true,
                    Some("verify_none") => false,
                    _ => {
                        return Err(bad(format!(
                            "verify must be verify_peer or verify_none, not {}",
                            show(value)
                        )))
                    }
                }
            }
            "fail_if_no_peer_cert" if section == "server" => {
                fail_if_no_peer_cert = match atom(value) {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => {
                        return Err(bad(format!(
                            "fail_if_no_peer_cert must be true or false, not {}",
                            show(value)
                        )))
                    }
                }
            }
            "fail_if_no_peer_cert" => {
                return Err(bad(
                    "fail_if_no_peer_cert belongs in the server section".into()
                ))
            }
            "versions" => {
                for version in as_list(value).unwrap_or_default() {
                    versions.push(match atom(&version) {
                        Some("tlsv1.2") => TlsVersion::Tls12,
                        Some("tlsv1.3") => TlsVersion::Tls13,
                        _ => {
                            return Err(bad(format!(
                            "unsupported TLS version {} (erlnode speaks 'tlsv1.2' and 'tlsv1.3')",
                            show(&version)
                        )))
                        }
                    });
                }
                if versions.is_empty() {
                    return Err(bad(format!(
                        "versions must be a non-empty list, not {}",
                        show(value)
                    )));
                }
            }
            "server_name_indication" if section == "client" => {
                server_name = match (atom(value), text(value)) {
                    (Some("disable"), _) => None,
                    (_, Some(name)) => Some(name),
                    _ => {
                        return Err(bad(format!(
                            "server_name_indication must be a host name or disable, not {}",
                            show(value)
                        )))
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "option {other} is not supported (erlnode reads {})",
                    KNOWN.join(", ")
                )))
            }
        }
    }
    let certfile = certfile.ok_or_else(|| bad("certfile is missing".to_string()))?;
    Ok(TlsRole {
        // As OTP: without a keyfile, the key is in the certificate's file.
        keyfile: keyfile.unwrap_or_else(|| certfile.clone()),
        certfile,
        cafile,
        verify,
        fail_if_no_peer_cert: fail_if_no_peer_cert.unwrap_or(true),
        server_name,
        versions,
    })
}

fn atom(term: &Term) -> Option<&str> {
    match term {
        Term::Atom(atom) => Some(atom.as_str()),
        _ => None,
    }
}

/// A string (a list of characters) or a binary, as text.
fn text(term: &Term) -> Option<String> {
    match term {
        Term::String(bytes) => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Term::Binary(bytes) => String::from_utf8(bytes.to_vec()).ok(),
        Term::List(items) => items
            .iter()
            .map(|item| match item {
                Term::Int(c) => u32::try_from(*c).ok().and_then(char::from_u32),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn as_list(term: &Term) -> Option<Vec<Term>> {
    match term {
        Term::List(items) => Some(items.clone()),
        Term::String(bytes) => Some(bytes.iter().map(|b| Term::Int(i64::from(*b))).collect()),
        _ => None,
    }
}

fn show(term: &Term) -> String {
    crate::etf::format_term(term)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MUTUAL: &str = r#"
        %% as OTP's guide writes one
        [{server, [{certfile, "/c/node.pem"}, {keyfile, "/c/node.key"},
                   {cacertfile, "/c/ca.pem"},
                   {verify, verify_peer}, {fail_if_no_peer_cert, true},
                   {versions, ['tlsv1.3', 'tlsv1.2']}]},
         {client, [{certfile, "/c/client.pem"}, {cacertfile, "/c/ca.pem"},
                   {verify, verify_none}, {server_name_indication, "db1.example.com"}]}].
    "#;

    #[test]
    fn both_sections_are_read() {
        let (server, client) = parse(MUTUAL).unwrap();
        assert_eq!(server.certfile, PathBuf::from("/c/node.pem"));
        assert_eq!(server.keyfile, PathBuf::from("/c/node.key"));
        assert_eq!(server.cafile, Some(PathBuf::from("/c/ca.pem")));
        assert!(server.verify && server.fail_if_no_peer_cert);
        assert_eq!(server.versions, [TlsVersion::Tls13, TlsVersion::Tls12]);
        assert_eq!(
            client.keyfile,
            PathBuf::from("/c/client.pem"),
            "key in the cert file"
        );
        assert!(!client.verify);
        assert_eq!(client.server_name.as_deref(), Some("db1.example.com"));
        assert!(client.versions.is_empty());
    }

    #[test]
    fn what_is_not_understood_is_an_error_that_names_it() {
        let cases = [
            (
                r#"[{server, [{certfile, "a"}, {depth, 2}]}, {client, [{certfile, "a"}]}]."#,
                "option depth is not supported",
            ),
            (
                r#"[{server, [{certfile, "a"}]}, {client, [{certfile, "a"}, {fail_if_no_peer_cert, true}]}]."#,
                "client: fail_if_no_peer_cert belongs in the server section",
            ),
            (
                r#"[{server, [{certfile, "a"}, {versions, ['tlsv1.1']}]}, {client, [{certfile, "a"}]}]."#,
                "unsupported TLS version",
            ),
            (r#"[{server, [{certfile, "a"}]}]."#, "no client section"),
            (
                r#"[{server, [{keyfile, "a"}]}, {client, [{certfile, "a"}]}]."#,
                "server: certfile is missing",
            ),
            (r#"[{server, [{verify, maybe}]}]."#, "verify must be"),
            ("{server, []}.", "expected a list"),
            ("[{server, [}].", "line 1"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
