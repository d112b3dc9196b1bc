//! Files of shell variable assignments (`/etc/ksmtuned.conf`,
//! `/etc/sysconfig/ksm`), read as data and never executed.
//!
//! The accepted subset: blank lines, `#` comments, `NAME=value` and
//! `export NAME=value`, where the value is a word made of unquoted text,
//! `'single quoted'` and `"double quoted"` parts (with `\"`, `\\`, `\$`,
//! `` \` `` escapes), optionally followed by a `# comment`. Expansions
//! (`$VAR`, `` `cmd` ``, `$(cmd)`) are refused: the original sourced these
//! files as root, we do not run them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One `NAME=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The file it is in (for messages).
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub name: String,
    pub value: String,
}

/// The assignments of a file and its syntax errors (all of them, so that a
/// checker can report every problem at once).
#[derive(Debug, Default)]
pub struct Parsed {
    pub path: PathBuf,
    pub assignments: Vec<Assignment>,
    pub errors: Vec<Error>,
}

impl Parsed {
    /// Append another file's assignments and errors: its lines come after
    /// this file's (so they win where both assign a name).
    pub fn extend(&mut self, other: Parsed) {
        self.assignments.extend(other.assignments);
        self.errors.extend(other.errors);
    }

    /// The last value assigned to `name` (later lines win, as in a shell).
    pub fn get(&self, name: &str) -> Option<&Assignment> {
        self.assignments.iter().rev().find(|a| a.name == name)
    }
}

/// Parse file text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Parsed {
    let mut out = Parsed {
        path: path.to_path_buf(),
        ..Default::default()
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((name, value))) => out.assignments.push(Assignment {
                path: path.to_path_buf(),
                line,
                name,
                value,
            }),
            Err(message) => out.errors.push(Error::Syntax {
                path: path.to_path_buf(),
                line,
                message,
            }),
        }
    }
    out
}

/// Read and parse a file. `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Parsed>> {
    match fs::File::open(path) {
        Ok(mut file) => read_from(path, &mut file).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Read and parse an opened file; `path` is only used in messages.
pub fn read_from(path: &Path, file: &mut impl io::Read) -> Result<Parsed> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Syntax {
        path: path.to_path_buf(),
        line: 0,
        message: "the file is not valid UTF-8 text".to_string(),
    })?;
    Ok(parse(path, &text))
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

fn parse_line(raw: &str) -> std::result::Result<Option<(String, String)>, String> {
    let s = raw.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let s = match s.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => s,
    };
    let Some(eq) = s.find('=') else {
        return Err(format!(
            "expected NAME=value, found {:?} (this file is read as data, not run as a script)",
            s.trim_end()
        ));
    };
    let name = &s[..eq];
    if !is_name(name) {
        return Err(format!("{name:?} is not a valid variable name"));
    }
    // A refused value is quoted as written, so the message shows what to fix.
    let raw = &s[eq + 1..];
    let value = parse_word(raw).map_err(|m| format!("{name}={}: {m}", raw.trim_end()))?;
    Ok(Some((name.to_string(), value)))
}

const NO_EXPANSION: &str =
    "expansions ($VAR, `cmd`, $(cmd)) are not supported: the file is read as data, not run";

fn parse_word(s: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                let rest: String = chars.collect();
                let rest = rest.trim();
                if rest.is_empty() || rest.starts_with('#') {
                    return Ok(out);
                }
                return Err(format!(
                    "unexpected {rest:?} after the value (quote values that contain spaces)"
                ));
            }
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(ch) => out.push(ch),
                    None => return Err("unterminated single quote".to_string()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(ch @ ('"' | '\\' | '$' | '`')) => out.push(ch),
                        Some(ch) => {
                            out.push('\\');
                            out.push(ch);
                        }
                        None => return Err("unterminated double quote".to_string()),
                    },
                    Some('$') | Some('`') => return Err(NO_EXPANSION.to_string()),
                    Some(ch) => out.push(ch),
                    None => return Err("unterminated double quote".to_string()),
                }
            },
            '\\' => match chars.next() {
                Some(ch) => out.push(ch),
                None => return Err("a line continuation (\\ at the end) is not supported".into()),
            },
            '$' | '`' => return Err(NO_EXPANSION.to_string()),
            ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return Err(format!(
                    "{c:?} is not allowed in a value (only NAME=value assignments are read)"
                ))
            }
            ch => out.push(ch),
        }
    }
    Ok(out)
}

/// Parse an integer the way C's `strtol(s, NULL, 0)` reads it: decimal,
/// `0x` hexadecimal or `0` octal, optional sign.
pub fn parse_c_integer(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, hex)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    // Digits only: from_str_radix would also take a sign (`--N`, `0x-1`),
    // and negating i128::MIN overflows.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    if neg {
        v.checked_neg()
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> std::result::Result<Option<(String, String)>, String> {
        parse_line(line)
    }

    #[test]
    fn forms() {
        let ok = |l: &str, n: &str, v: &str| {
            assert_eq!(one(l).unwrap(), Some((n.to_string(), v.to_string())), "{l}");
        };
        ok("A=1", "A", "1");
        ok("  export A=1", "A", "1");
        ok("A=", "A", "");
        ok("A=''", "A", "");
        ok("A=\"a b\"", "A", "a b");
        ok("A='a \"b\" $c'", "A", "a \"b\" $c");
        ok("A=\"x\\\"y\\$\"", "A", "x\"y$");
        ok("A=1 # comment", "A", "1");
        ok("A=1\t", "A", "1");
        ok("A=pre'fix'\"ed\"", "A", "prefixed");
        ok("LOGFILE=/var/log/ksmtuned", "LOGFILE", "/var/log/ksmtuned");
        ok("exportX=1", "exportX", "1");
        assert_eq!(one("# KSM_SLEEP_MSEC=10").unwrap(), None);
        assert_eq!(one("   ").unwrap(), None);
    }

    #[test]
    fn errors() {
        for bad in [
            "A",
            "echo hi",
            "1A=2",
            "A-B=1",
            "A=$HOME",
            "A=\"$HOME\"",
            "A=`id`",
            "A=$(id)",
            "A=1 2",
            "A='x",
            "A=\"x",
            "A=1; rm -rf /",
            "A=x\\",
            "export",
        ] {
            assert!(one(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_reports_all_errors_with_lines() {
        let p = parse(Path::new("/etc/x.conf"), "A=1\nbad line\nB=2\nC=$x\nA=3\n");
        assert_eq!(p.errors.len(), 2);
        assert!(p.errors[0].to_string().starts_with("/etc/x.conf:2: "));
        assert!(p.errors[1].to_string().starts_with("/etc/x.conf:4: "));
        assert_eq!(p.get("A").unwrap().value, "3");
        assert_eq!(p.get("A").unwrap().line, 5);
        assert_eq!(p.get("B").unwrap().value, "2");
    }

    #[test]
    fn c_integers() {
        assert_eq!(parse_c_integer("100"), Some(100));
        assert_eq!(parse_c_integer("0x10"), Some(16));
        assert_eq!(parse_c_integer("010"), Some(8));
        assert_eq!(parse_c_integer("0"), Some(0));
        assert_eq!(parse_c_integer("-5"), Some(-5));
        assert_eq!(parse_c_integer("09"), None);
        assert_eq!(parse_c_integer("abc"), None);
        assert_eq!(parse_c_integer(""), None);
        assert_eq!(parse_c_integer("0x"), None);
        // Found by fuzzing: a second sign made i128::MIN, whose negation
        // overflowed (a panic in debug builds).
        assert_eq!(
            parse_c_integer("--170141183460469231731687303715884105728"),
            None
        );
        assert_eq!(parse_c_integer("+-5"), None);
        assert_eq!(parse_c_integer("0x-5"), None);
        assert_eq!(parse_c_integer("0-5"), None);
        assert_eq!(parse_c_integer("-0x10"), Some(-16));
    }
}
