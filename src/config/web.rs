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

/// Load and check the web configuration file `path`. Every problem is
/// reported (a file with three mistakes gives three errors), except that
/// a file YAML cannot parse gives that one.
pub fn load(path: &Path, trust: Trust) -> Result<WebConfig, Vec<Error>> {
    let read_err = |source| {
        vec![Error::Read {
            path: path.to_path_buf(),
            source,
        }]
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mut warnings = Vec::new();
    check_file(path, &meta, true, trust, &mut warnings).map_err(|e| vec![e])?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    let parsed: Option<FileText> = yaml_serde::from_str(&text).map_err(|e| {
        let message = e.to_string();
        // The location is given as file:line instead.
        let message = match message.rsplit_once(" at line ") {
            Some((m, _)) if e.location().is_some() => m.to_string(),
            _ => message,
        };
        vec![Error::Syntax {
            path: path.to_path_buf(),
            line: e.location().map_or(1, |l| l.line()),
            message,
        }]
    })?;
    let parsed = parsed.unwrap_or(FileText {
        tls_server_config: None,
        basic_auth_users: None,
    });
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut errors = Vec::new();
    let tls = parsed.tls_server_config.and_then(|t| {
        let web = Web {
            path,
            text: &text,
            dir,
            trust,
        };
        match web.tls_config(t, &mut warnings) {
            Ok(c) => Some(Arc::new(c)),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        }
    });
    let users = parsed.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if let Err(e) = hash.parse::<bcrypt::HashParts>() {
            let line = match line_of(&text, user) {
                1 => line_of(&text, "basic_auth_users"),
                n => n,
            };
            errors.push(Error::Syntax {
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
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(WebConfig {
        path: path.to_path_buf(),
        tls,
        users,
        warnings,
    })
}

/// The web configuration being read: its file, text and directory (the
/// files it names are relative to it).
struct Web<'a> {
    path: &'a Path,
    text: &'a str,
    dir: &'a Path,
    trust: Trust,
}

impl Web<'_> {
    /// An error at the line of `key`.
    fn syntax(&self, key: &str, message: String) -> Error {
        Error::Syntax {
            path: self.path.to_path_buf(),
            line: line_of(self.text, key),
            message,
        }
    }

    /// Read the PEM file named by `key` (checked like the configuration).
    fn read(
        &self,
        key: &str,
        file: &str,
        secret: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(PathBuf, Vec<u8>), Error> {
        let path = self.dir.join(file);
        let line = line_of(self.text, key);
        let pem = read_checked(self.path, line, key, &path, secret, self.trust, warnings)?;
        Ok((path, pem))
    }

    /// The certificates of the PEM file named by `key`; `what` names them
    /// when there are none.
    fn certificates(
        &self,
        key: &str,
        file: &str,
        what: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<CertificateDer<'static>>, Error> {
        let (path, pem) = self.read(key, file, false, warnings)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.syntax(key, format!("{key} {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(self.syntax(
                key,
                format!(
                    "{key} {}: no PEM certificate ({what}) in it",
                    path.display()
                ),
            ));
        }
        Ok(certs)
    }

    fn private_key(
        &self,
        file: &str,
        warnings: &mut Vec<String>,
    ) -> Result<PrivateKeyDer<'static>, Error> {
        let (path, pem) = self.read("key_file", file, true, warnings)?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            self.syntax(
                "key_file",
                format!(
                    "key_file {}: no usable PEM private key in it: {e}",
                    path.display()
                ),
            )
        })
    }

    fn versions(
        &self,
        t: &TlsText,
    ) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
        let (min, max) = (
            t.min_version.unwrap_or(TlsVersion::TLS12),
            t.max_version.unwrap_or(TlsVersion::TLS13),
        );
        if min > max {
            return Err(self.syntax(
                "min_version",
                format!("min_version {min:?} is above max_version {max:?}"),
            ));
        }
        Ok([
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect())
    }

    /// The clients' certificate verifier (`None`: no client certificates).
    fn client_verifier(
        &self,
        t: &TlsText,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, Error> {
        let auth = t.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
        let ca = match (auth, &t.client_ca_file) {
            (ClientAuth::NoClientCert, None) => return Ok(None),
            (ClientAuth::NoClientCert, Some(_)) => {
                return Err(self.syntax(
                    "client_ca_file",
                    "client_ca_file is set but client_auth_type is NoClientCert (or unset): \
                     set client_auth_type to RequireAndVerifyClientCert or \
                     VerifyClientCertIfGiven, or remove client_ca_file"
                        .into(),
                ))
            }
            (_, None) => {
                return Err(self.syntax(
                    "client_auth_type",
                    format!("client_auth_type {auth:?} needs client_ca_file (the CA that signs the clients' certificates)"),
                ))
            }
            (_, Some(ca)) => ca,
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certificates("client_ca_file", ca, "the clients' CA", warnings)? {
            roots.add(c).map_err(|e| {
                self.syntax(
                    "client_ca_file",
                    format!("client_ca_file {}: {e}", self.dir.join(ca).display()),
                )
            })?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(provider),
        );
        let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| self.syntax("client_ca_file", e.to_string()))?;
        Ok(Some(verifier))
    }

    /// The TLS server configuration; every problem of its keys is
    /// reported.
    fn tls_config(
        &self,
        t: TlsText,
        warnings: &mut Vec<String>,
    ) -> Result<rustls::ServerConfig, Vec<Error>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = self.certificates(
            "cert_file",
            &t.cert_file,
            "-----BEGIN CERTIFICATE-----",
            warnings,
        );
        let key = self.private_key(&t.key_file, warnings);
        let versions = self.versions(&t);
        let verifier = self.client_verifier(&t, &provider, warnings);
        let (certs, key, versions, verifier) = match (certs, key, versions, verifier) {
            (Ok(c), Ok(k), Ok(v), Ok(f)) => (c, k, v, f),
            (c, k, v, f) => {
                return Err([c.err(), k.err(), v.err(), f.err()]
                    .into_iter()
                    .flatten()
                    .collect())
            }
        };
        let one = |e: Error| vec![e];
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| one(self.syntax("min_version", e.to_string())))?;
        let builder = match verifier {
            None => builder.with_no_client_auth(),
            Some(v) => builder.with_client_cert_verifier(v),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            one(self.syntax(
                "key_file",
                format!(
                    "cert_file {} with key_file {}: {e}",
                    self.dir.join(&t.cert_file).display(),
                    self.dir.join(&t.key_file).display()
                ),
            ))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn join(errors: Vec<Error>) -> String {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

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
        join(load(&p, owner()).expect_err(text))
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
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.yml").display().to_string();
        let e = err(
            dir.path(),
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n  \
             min_version: TLS13\n  max_version: TLS12\nbasic_auth_users:\n  u: plaintext\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(lines[0].starts_with(&format!("{web}:2: cert_file ")), "{e}");
        assert!(lines[1].starts_with(&format!("{web}:3: key_file ")), "{e}");
        assert!(
            lines[2].starts_with(&format!("{web}:4: min_version")),
            "{e}"
        );
        assert!(
            lines[3].starts_with(&format!("{web}:7: basic_auth_users: u")),
            "{e}"
        );
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
        let e = join(load(&p, owner()).unwrap_err());
        assert!(
            e.contains("readable by others") && e.contains("chmod o-r"),
            "{e}"
        );
        let w = load(&p, Trust::Insecure).unwrap();
        assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o660)).unwrap();
        let e = join(load(&p, owner()).unwrap_err());
        assert!(e.contains("writable by its group"), "{e}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        load(&p, owner()).unwrap();
    }
}
