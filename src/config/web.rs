//! The metrics endpoint's web configuration file (`KSM_METRICS_WEB_CONFIG`):
//! TLS and basic authentication, in the format of the Prometheus
//! exporters' web configuration file (exporter-toolkit), so that the file
//! an administrator already writes for node_exporter works here:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/ksmtuned/metrics.crt
//!   key_file: /etc/ksmtuned/metrics.key
//!   # client_auth_type: RequireAndVerifyClientCert
//!   # client_ca_file: /etc/ksmtuned/clients-ca.crt
//!   # min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt, e.g. from `htpasswd -nBC 10 prometheus`
//! ```
//!
//! Everything is checked when the file is loaded (`ksmtuned
//! --check-config`, start, SIGHUP): unknown keys, a value that is not a
//! bcrypt hash, a certificate or key that cannot be read or do not match
//! are errors naming `file:line`. The file, like the main configuration,
//! must be owned by root and writable by no one else, and since it holds
//! password hashes it must not be readable by others either; the same goes
//! for the private key. Paths in it are relative to its directory.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::{check_secure, Trust};
use crate::error::Error;

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    tls_server_config: Option<TlsText>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsText {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_auth_type: Option<ClientAuth>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

/// `client_auth_type`: the exporters' names for the modes that rustls has
/// (`RequestClientCert` and `RequireAnyClientCert`, which accept
/// certificates nobody verifies, are refused).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// `min_version` / `max_version`: rustls speaks TLS 1.2 and 1.3 only.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    TLS12,
    TLS13,
}

/// A value shown in a message: a mistyped hash may be a clear-text
/// password, so only its start.
fn abbreviate(s: &str) -> String {
    let start: String = s.chars().take(4).collect();
    if start.len() < s.len() {
        format!("{start}...")
    } else {
        start
    }
}

/// A loaded, checked web configuration.
pub struct WebConfig {
    /// The file.
    pub path: PathBuf,
    /// TLS, when `tls_server_config` is given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `basic_auth_users`: user name -> bcrypt hash. Empty: no
    /// authentication.
    pub users: BTreeMap<String, String>,
    /// Problems that `--insecure-config` let through.
    pub warnings: Vec<String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a key is first set in the file: the line to name in an error
/// about its value (1 when it is not found).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(1, |i| i + 1)
}

/// Refuse a file that someone other than root could have written (the
/// main configuration's rule, [`check_secure`]) or, for a file holding
/// secrets, that others can read. With `--insecure-config`, a warning.
fn check_file(
    path: &Path,
    meta: &fs::Metadata,
    secret: bool,
    trust: Trust,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let euid = match trust {
        Trust::Owner { euid } => euid,
        Trust::Insecure => 0,
    };
    let mut problem = check_secure(path, meta, euid).err();
    let mode = meta.mode() & 0o7777;
    if problem.is_none() && secret && mode & 0o004 != 0 {
        problem = Some(Error::Other(format!(
            "{p}: refusing to use this file (mode {mode:04o}): it holds secrets and is \
             readable by others (fix: chmod o-r {p}), or start ksmtuned with --insecure-config",
            p = path.display()
        )));
    }
    match (problem, trust) {
        (None, _) => Ok(()),
        (Some(e), Trust::Insecure) => {
            warnings.push(format!("{e}; read anyway because of --insecure-config"));
            Ok(())
        }
        (Some(e), Trust::Owner { .. }) => Err(e),
    }
}

/// Open a file named in the web configuration and read it after checking
/// it; errors name the web configuration's `line` too.
fn read_checked(
    web: &Path,
    line: usize,
    key: &str,
    path: &Path,
    secret: bool,
    trust: Trust,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, Error> {
    let at = |message: String| Error::Syntax {
        path: web.to_path_buf(),
        line,
        message: format!("{key} {}: {message}", path.display()),
    };
    let mut file = fs::File::open(path).map_err(|e| at(crate::error::describe_io(&e)))?;
    let meta = file.metadata().map_err(|e| at(e.to_string()))?;
    check_file(path, &meta, secret, trust, warnings).map_err(|e| at(e.to_string()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| at(e.to_string()))?;
    Ok(bytes)
}

/// Load and check the web configuration file `path`.
pub fn load(path: &Path, trust: Trust) -> Result<WebConfig, Error> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mut warnings = Vec::new();
    check_file(path, &meta, true, trust, &mut warnings)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    let parsed: Option<FileText> = yaml_serde::from_str(&text).map_err(|e| {
        let message = e.to_string();
        // The location is given as file:line instead.
        let message = match message.rsplit_once(" at line ") {
            Some((m, _)) if e.location().is_some() => m.to_string(),
            _ => message,
        };
        Error::Syntax {
            path: path.to_path_buf(),
            line: e.location().map_or(1, |l| l.line()),
            message,
        }
    })?;
    let parsed = parsed.unwrap_or(FileText {
        tls_server_config: None,
        basic_auth_users: None,
    });
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tls = match parsed.tls_server_config {
        Some(t) => Some(Arc::new(tls_config(
            path,
            &text,
            dir,
            t,
            trust,
            &mut warnings,
        )?)),
        None => None,
    };
    let users = parsed.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if let Err(e) = hash.parse::<bcrypt::HashParts>() {
            let line = match line_of(&text, user) {
                1 => line_of(&text, "basic_auth_users"),
                n => n,
            };
            return Err(Error::Syntax {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "basic_auth_users: {user}: the password must be a bcrypt hash ($2y$10$ \
                     and 53 more characters, e.g. from `htpasswd -nBC 10 {user}`), not {:?}: {e}",
                    abbreviate(hash)
                ),
            });
        }
    }
    Ok(WebConfig {
        path: path.to_path_buf(),
        tls,
        users,
        warnings,
    })
}

fn tls_config(
    web: &Path,
    text: &str,
    dir: &Path,
    t: TlsText,
    trust: Trust,
    warnings: &mut Vec<String>,
) -> Result<rustls::ServerConfig, Error> {
    let syntax = |key: &str, message: String| Error::Syntax {
        path: web.to_path_buf(),
        line: line_of(text, key),
        message,
    };
    let resolve = |p: &str| dir.join(p);
    let cert_path = resolve(&t.cert_file);
    let key_path = resolve(&t.key_file);
    let cert_line = line_of(text, "cert_file");
    let key_line = line_of(text, "key_file");
    let pem = read_checked(
        web,
        cert_line,
        "cert_file",
        &cert_path,
        false,
        trust,
        warnings,
    )?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            syntax(
                "cert_file",
                format!("cert_file {}: {e}", cert_path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(syntax(
            "cert_file",
            format!(
                "cert_file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                cert_path.display()
            ),
        ));
    }
    let pem = read_checked(web, key_line, "key_file", &key_path, true, trust, warnings)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        syntax(
            "key_file",
            format!(
                "key_file {}: no usable PEM private key in it: {e}",
                key_path.display()
            ),
        )
    })?;

    let (min, max) = (
        t.min_version.unwrap_or(TlsVersion::TLS12),
        t.max_version.unwrap_or(TlsVersion::TLS13),
    );
    if min > max {
        return Err(syntax(
            "min_version",
            format!("min_version {min:?} is above max_version {max:?}"),
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| syntax("min_version", e.to_string()))?;

    let auth = t.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let builder = match (auth, &t.client_ca_file) {
        (ClientAuth::NoClientCert, None) => builder.with_no_client_auth(),
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(syntax(
                "client_ca_file",
                "client_ca_file is set but client_auth_type is NoClientCert (or unset): \
                 set client_auth_type to RequireAndVerifyClientCert or \
                 VerifyClientCertIfGiven, or remove client_ca_file"
                    .into(),
            ))
        }
        (_, None) => {
            return Err(syntax(
                "client_auth_type",
                format!("client_auth_type {auth:?} needs client_ca_file (the CA that signs the clients' certificates)"),
            ))
        }
        (_, Some(ca)) => {
            let ca_path = resolve(ca);
            let line = line_of(text, "client_ca_file");
            let pem = read_checked(web, line, "client_ca_file", &ca_path, false, trust, warnings)?;
            let mut roots = rustls::RootCertStore::empty();
            let mut any = false;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| {
                    syntax(
                        "client_ca_file",
                        format!("client_ca_file {}: {e}", ca_path.display()),
                    )
                })?;
                roots.add(c).map_err(|e| {
                    syntax(
                        "client_ca_file",
                        format!("client_ca_file {}: {e}", ca_path.display()),
                    )
                })?;
                any = true;
            }
            if !any {
                return Err(syntax(
                    "client_ca_file",
                    format!(
                        "client_ca_file {}: no PEM certificate in it",
                        ca_path.display()
                    ),
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            );
            let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| syntax("client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        syntax(
            "key_file",
            format!(
                "cert_file {} with key_file {}: {e}",
                cert_path.display(),
                key_path.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A bcrypt hash of "secret" (cost 4: quick).
    fn hash() -> String {
        bcrypt::hash("secret", 4).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn owner() -> Trust {
        Trust::Owner {
            euid: crate::kernel::sys::euid(),
        }
    }

    fn err(dir: &Path, text: &str) -> String {
        let p = write(dir, "web.yml", text, 0o600);
        load(&p, owner()).expect_err(text).to_string()
    }

    #[test]
    fn users_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("# users\nbasic_auth_users:\n  prometheus: {}\n", hash()),
            0o600,
        );
        let w = load(&p, owner()).unwrap();
        assert!(w.tls.is_none());
        assert!(bcrypt::verify("secret", &w.users["prometheus"]).unwrap());
        let p = write(dir.path(), "empty.yml", "# nothing\n", 0o600);
        let w = load(&p, owner()).unwrap();
        assert!(w.tls.is_none() && w.users.is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.yml");
        // The file is parsed before the values are checked.
        let e = err(
            dir.path(),
            "basic_auth_users:\n  a: x\ntls_server_confg: {}\n",
        );
        assert!(e.starts_with(&format!("{}:3: ", web.display())), "{e}");
        let e = err(
            dir.path(),
            &format!("basic_auth_users:\n  a: {}\nbogus: 1\n", hash()),
        );
        assert!(
            e.starts_with(&format!("{}:3: ", web.display())) && e.contains("unknown field `bogus`"),
            "{e}"
        );
        let e = err(dir.path(), "basic_auth_users:\n  u: plaintext\n");
        assert!(
            e.starts_with(&format!("{}:2: ", web.display()))
                && e.contains("bcrypt")
                && !e.contains("plaintext"),
            "{e}"
        );
        let e = err(
            dir.path(),
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        );
        assert!(
            e.starts_with(&format!("{}:2: cert_file ", web.display()))
                && e.contains(&dir.path().join("missing.crt").display().to_string()),
            "{e}"
        );
        let e = err(
            dir.path(),
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
        );
        assert!(e.contains(":4: ") && e.contains("TLS10"), "{e}");
        let e = err(dir.path(), "tls_server_config:\n  key_file: b\n");
        assert!(e.contains("cert_file"), "{e}");
        let e = err(dir.path(), "- a list\n");
        assert!(e.starts_with(&format!("{}:1: ", web.display())), "{e}");
    }

    #[test]
    fn refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  a: {}\n", hash()),
            0o644,
        );
        let e = load(&p, owner()).unwrap_err().to_string();
        assert!(
            e.contains("readable by others") && e.contains("chmod o-r"),
            "{e}"
        );
        let w = load(&p, Trust::Insecure).unwrap();
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o660)).unwrap();
        let e = load(&p, owner()).unwrap_err().to_string();
        assert!(e.contains("writable by its group"), "{e}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        load(&p, owner()).unwrap();
    }
}
