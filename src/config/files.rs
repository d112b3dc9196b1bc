//! Which configuration files are read, in which order (the drop-ins, then
//! the file), and whom they must belong to before they are trusted.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::shellvars::{self, Parsed};
use super::{drop_in_dir, from_parsed, web, Loaded, DEFAULT_CONFIG};
use crate::error::Error;
use crate::root::Root;

/// Whether [`load`] checks who could have written the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The file and its directory must be owned by root or by `euid` (the
    /// user running ksmtuned: root in production, so root only) and be
    /// writable by nobody else.
    Owner { euid: u32 },
    /// `--insecure-config`: read it anyway (with a warning).
    Insecure,
}

impl Trust {
    /// The rule for this process: its effective uid, or `--insecure-config`.
    pub fn for_this_process(insecure: bool) -> Trust {
        if insecure {
            Trust::Insecure
        } else {
            Trust::Owner {
                euid: crate::kernel::sys::euid(),
            }
        }
    }
}

/// Check that the configuration file `path` (whose opened file has
/// `meta`), the directory it is named in and the directory it really is in
/// (through symlinks) are owned by root or `euid` and not writable by group
/// or others: the daemon runs as root, and whoever can write its
/// configuration steers it (LOGFILE names a file it appends to).
pub fn check_secure(path: &Path, meta: &fs::Metadata, euid: u32) -> Result<(), Error> {
    check_owner_mode(path, path, meta, "file", euid)?;
    let named_in = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![named_in];
    if let Some(real) = fs::canonicalize(path)
        .ok()
        .and_then(|r| r.parent().map(Path::to_path_buf))
    {
        dirs.push(real);
    }
    for dir in dirs {
        let m = fs::metadata(&dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        check_owner_mode(&dir, path, &m, "directory", euid)?;
    }
    Ok(())
}

fn check_owner_mode(
    path: &Path,
    file: &Path,
    meta: &fs::Metadata,
    what: &'static str,
    euid: u32,
) -> Result<(), Error> {
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let reason = if uid != 0 && uid != euid {
        format!(
            "it is owned by uid {uid}, not by root{}",
            if euid != 0 {
                format!(" or uid {euid} (who runs ksmtuned)")
            } else {
                String::new()
            }
        )
    } else if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and by others",
            (true, false) => "its group",
            _ => "others",
        };
        format!("it is writable by {who}")
    } else {
        return Ok(());
    };
    Err(Error::Insecure {
        path: path.to_path_buf(),
        what,
        file: file.to_path_buf(),
        uid,
        mode,
        reason,
    })
}

/// Load the configuration. `explicit` is a file named on the command line
/// (used as is, it must exist); otherwise the default file under the root
/// is read if it exists, and defaults apply if it does not. The drop-in
/// files of [`drop_in_dir`] are read first. Every file is checked (see
/// [`check_secure`]) on the opened file, then read from it.
pub fn load(root: &Root, explicit: Option<&Path>, trust: Trust) -> Loaded {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => root.join(DEFAULT_CONFIG),
    };
    let fail = |e: Error| Loaded {
        errors: vec![e],
        ..Default::default()
    };
    let mut warnings = Vec::new();
    let mut drop_ins = Vec::new();
    let mut combined: Option<Parsed> = None;
    let dir = drop_in_dir(&path);
    match drop_in_files(&dir) {
        Ok(files) => {
            for f in files {
                match read_checked(&f, trust, &mut warnings) {
                    Ok(Some(p)) => {
                        drop_ins.push(f);
                        match &mut combined {
                            Some(c) => c.extend(p),
                            None => combined = Some(p),
                        }
                    }
                    // Vanished since the listing.
                    Ok(None) => {}
                    Err(e) => return fail(e),
                }
            }
        }
        Err(e) => return fail(e),
    }
    let main = match read_checked(&path, trust, &mut warnings) {
        Ok(Some(p)) => Some(p),
        Ok(None) if explicit.is_none() => None,
        Ok(None) => {
            return fail(Error::Other(format!(
                "configuration file {} does not exist",
                path.display()
            )))
        }
        Err(e) => return fail(e),
    };
    let parsed = match (combined, main) {
        (Some(mut c), Some(m)) => {
            c.path = m.path.clone();
            c.extend(m);
            Some(c)
        }
        (Some(mut c), None) => {
            c.path = path.clone();
            Some(c)
        }
        (None, m) => m,
    };
    let Some(parsed) = parsed else {
        return Loaded {
            warnings,
            ..Default::default()
        };
    };
    let main_present = path.exists();
    let mut loaded = from_parsed(parsed);
    // The web configuration is checked with the file that names it.
    if let Some(web) = &loaded.config.metrics_web_config {
        match web::load(web, trust) {
            Ok(w) => warnings.extend(w.warnings),
            Err(mut e) => loaded.errors.append(&mut e),
        }
    }
    if !main_present {
        loaded.path = None;
    }
    loaded.drop_ins = drop_ins;
    warnings.append(&mut loaded.warnings);
    loaded.warnings = warnings;
    loaded
}

/// The `*.conf` files of a drop-in directory, sorted by name; none when
/// the directory does not exist.
fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "conf") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Open, check and parse one file; `Ok(None)` when it does not exist.
fn read_checked(
    path: &Path,
    trust: Trust,
    warnings: &mut Vec<String>,
) -> Result<Option<Parsed>, Error> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if let Err(e) = check_secure(path, &meta, euid_of(trust)) {
        match (trust, e) {
            (
                Trust::Insecure,
                Error::Insecure {
                    path: p, reason, ..
                },
            ) => warnings.push(format!(
                "{}: {reason}; read anyway because of --insecure-config",
                p.display()
            )),
            (Trust::Insecure, _) => {}
            (Trust::Owner { .. }, e) => return Err(e),
        }
    }
    shellvars::read_from(path, &mut file).map(Some)
}

fn euid_of(trust: Trust) -> u32 {
    match trust {
        Trust::Owner { euid } => euid,
        // Checked only for the warning: as if run by root.
        Trust::Insecure => 0,
    }
}
