//! The configuration file read with values, drop-ins and owners.

use std::fs;

use super::*;
use crate::Root;

fn conf(text: &str) -> Loaded {
    from_parsed(shellvars::parse(Path::new("/etc/ksmtuned.conf"), text))
}

#[test]
fn defaults_and_values() {
    assert_eq!(conf("").config, Config::default());
    let l = conf(
        "KSM_MONITOR_INTERVAL=5\nexport KSM_SLEEP_MSEC='20'\nKSM_NPAGES_BOOST=\"1000\"\n\
         KSM_NPAGES_DECAY=-10\nKSM_NPAGES_MIN=1\nKSM_NPAGES_MAX=5000\nKSM_THRES_COEF=30\n\
         KSM_THRES_CONST=4096\nLOGFILE=/var/log/ksmtuned\nDEBUG=0\nKSM_POLICY=classic\n",
    );
    assert!(l.is_ok(), "{:?}", l.errors);
    let c = l.config;
    assert_eq!(c.monitor_interval, 5);
    assert_eq!(c.sleep_msec, Some(20));
    assert_eq!(c.sleep_msec(Flavour::Proxmox), 20);
    assert_eq!(Config::default().sleep_msec(Flavour::Proxmox), 100);
    assert_eq!(Config::default().sleep_msec(Flavour::Rhel), 10);
    assert_eq!(c.flavour, None);
    assert_eq!(
        conf("KSM_FLAVOUR=proxmox\n").config.flavour,
        Some(Flavour::Proxmox)
    );
    assert_eq!(conf("KSM_FLAVOUR=auto\n").config.flavour, None);
    let bad = conf("KSM_FLAVOUR=pve\n");
    assert!(
        bad.errors[0].to_string().contains(":1: KSM_FLAVOUR"),
        "{:?}",
        bad.errors
    );
    assert_eq!(c.npages_boost, 1000);
    assert_eq!(c.npages_decay, -10);
    assert_eq!((c.npages_min, c.npages_max), (1, 5000));
    assert_eq!((c.thres_coef, c.thres_const), (30, 4096));
    assert_eq!(c.logfile.as_deref(), Some(Path::new("/var/log/ksmtuned")));
    assert!(c.debug, "DEBUG=0 is non-empty: on, as in the original");
    assert_eq!(c.policy, PolicyKind::Classic);
}

#[test]
fn empty_means_default() {
    let l = conf("KSM_NPAGES_BOOST=\nDEBUG=\nLOGFILE=''\n");
    assert!(l.is_ok());
    assert_eq!(l.config, Config::default());
}

#[test]
fn errors_name_file_and_line() {
    let l = conf(
        "KSM_MONITOR_INTERVAL=0\nKSM_NPAGES_BOOST=lots\nKSM_NPAGES_MIN=-1\n\
         KSM_THRES_COEF=1.5\nKSM_POLICY=fast\n",
    );
    let msgs: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 5, "{msgs:?}");
    assert!(
        msgs[0].starts_with("/etc/ksmtuned.conf:1: KSM_MONITOR_INTERVAL"),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.starts_with("/etc/ksmtuned.conf:2: ")));
    assert!(msgs.iter().any(|m| m.starts_with("/etc/ksmtuned.conf:5: ")));
}

#[test]
fn min_above_max() {
    let l = conf("KSM_NPAGES_MIN=2000\n");
    assert_eq!(l.errors.len(), 1);
    let m = l.errors[0].to_string();
    assert!(
        m.contains(":1:") && m.contains("2000") && m.contains("1250"),
        "{m}"
    );
}

#[test]
fn values_follow_the_variables() {
    let names: Vec<&str> = Config::default().values().iter().map(|v| v.0).collect();
    let known: Vec<&str> = VARIABLES.iter().map(|v| v.0).collect();
    assert_eq!(names, known);
}

#[test]
fn unknown_names_warn() {
    let l = conf("KSM_NPAGE_MAX=10\n");
    assert!(l.is_ok());
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0]
            .contains(":1: unknown variable KSM_NPAGE_MAX (ignored; did you mean KSM_NPAGES_MAX?)"),
        "{:?}",
        l.warnings
    );
    let l = conf("KSM_SLEEP_MSECS=10\nksm_policy=adaptive\nFOO=1\n");
    assert!(
        l.warnings[0].contains("did you mean KSM_SLEEP_MSEC?"),
        "{:?}",
        l.warnings
    );
    assert!(
        l.warnings[1].contains("did you mean KSM_POLICY?"),
        "{:?}",
        l.warnings
    );
    assert!(
        l.warnings[2].ends_with("unknown variable FOO (ignored)"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn listen_messages() {
    let msg = |v: &str| {
        let l = conf(&format!("KSM_METRICS_LISTEN={v}\n"));
        assert_eq!(l.errors.len(), 1, "{v}");
        l.errors[0].to_string()
    };
    let m = msg("localhost:9926");
    assert!(
        m.contains("KSM_METRICS_LISTEN=\"localhost:9926\"")
            && m.contains("is a host name")
            && m.contains("127.0.0.1:9926 or [::1]:9926"),
        "{m}"
    );
    assert!(msg("metrics.example.org:9926").contains("is a host name"));
    assert!(msg("127.0.0.1:99999").contains("\"99999\" is not a port number"));
    assert!(msg("127.0.0.1").contains("no port"));
    assert!(conf("KSM_METRICS_LISTEN=[::1]:9926\n").is_ok());
}

#[test]
fn refused_syntax_quotes_the_value() {
    let l = conf("KSM_SLEEP_MSEC=$(nproc)\n");
    let m = l.errors[0].to_string();
    assert!(m.contains("KSM_SLEEP_MSEC=$(nproc): expansions"), "{m}");
}

#[test]
fn shipped_example_is_the_defaults() {
    // Every line is commented out: an upgrade from Debian's ksmtuned
    // (whose conffile is the same) changes nothing, and the policy is
    // classic unless a drop-in (a new installation's) or the
    // administrator sets it.
    let text = include_str!("../../etc/ksmtuned.conf");
    let l = conf(text);
    assert!(l.is_ok(), "{:?}", l.errors);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config, Config::default());
    assert_eq!(Config::default().policy, PolicyKind::Classic);
    // Every variable is documented in it.
    for (name, _) in VARIABLES {
        assert!(
            text.contains(&format!("# {name}=")),
            "{name} not in the example"
        );
    }
}

#[test]
fn drop_ins_are_read_first_and_the_file_wins() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("etc")).unwrap();
    let f = t.path().join("etc/ksmtuned.conf");
    let d = drop_in_dir(&f);
    fs::create_dir(&d).unwrap();
    fs::write(
        d.join("50-policy.conf"),
        "KSM_POLICY=adaptive\nKSM_MAX_CPU=30\n",
    )
    .unwrap();
    fs::write(
        d.join("10-first.conf"),
        "KSM_MAX_CPU=20\nKSM_NPAGES_BOOST=400\n",
    )
    .unwrap();
    fs::write(d.join("ignored.dpkg-old"), "KSM_POLICY=bad\n").unwrap();
    let trust = Trust::Owner {
        euid: crate::kernel::sys::euid(),
    };
    // No main file: the drop-ins alone.
    let l = load(&Root::new(t.path()), None, trust);
    assert!(l.is_ok(), "{:?}", l.errors);
    assert!(l.path.is_none());
    assert_eq!(l.config.policy, PolicyKind::Adaptive);
    fs::write(&f, "# all commented\n").unwrap();
    let l = load(&Root::default(), Some(&f), trust);
    assert!(l.is_ok(), "{:?}", l.errors);
    assert_eq!(l.config.policy, PolicyKind::Adaptive);
    assert_eq!(l.config.max_cpu, 30);
    assert_eq!(l.config.npages_boost, 400);
    assert_eq!(l.drop_ins.len(), 2);
    assert_eq!(
        l.policy_origin.as_deref(),
        Some(format!("{}:1", d.join("50-policy.conf").display()).as_str())
    );
    // The file has the last word.
    fs::write(&f, "KSM_POLICY=classic\n").unwrap();
    let l = load(&Root::default(), Some(&f), trust);
    assert_eq!(l.config.policy, PolicyKind::Classic);
    assert_eq!(l.config.max_cpu, 30);
    // An error in a drop-in names the drop-in.
    fs::write(d.join("60-bad.conf"), "\nKSM_MAX_CPU=200\n").unwrap();
    let l = load(&Root::default(), Some(&f), trust);
    assert_eq!(l.errors.len(), 1);
    let m = l.errors[0].to_string();
    assert!(
        m.starts_with(&format!("{}:2: ", d.join("60-bad.conf").display())),
        "{m}"
    );
}

mod security {
    use super::*;
    use std::os::unix::fs::{chown, symlink, PermissionsExt};

    fn is_root() -> bool {
        let root = crate::kernel::sys::euid() == 0;
        if !root {
            eprintln!("SKIPPED: changing file owners needs root");
        }
        root
    }

    /// A config file `dir/ksmtuned.conf` with the given owner and
    /// mode, in a directory with the given owner and mode.
    fn setup(dir_uid: u32, dir_mode: u32, uid: u32, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("etc");
        fs::create_dir(&d).unwrap();
        let f = d.join("ksmtuned.conf");
        fs::write(&f, "KSM_NPAGES_BOOST=500\n").unwrap();
        chown(&f, Some(uid), None).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        chown(&d, Some(dir_uid), None).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(dir_mode)).unwrap();
        (t, f)
    }

    fn load_as(f: &Path, euid: u32) -> Loaded {
        load(&Root::default(), Some(f), Trust::Owner { euid })
    }

    fn refused(l: &Loaded) -> String {
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert!(
            matches!(l.errors[0], Error::Insecure { .. }),
            "{:?}",
            l.errors
        );
        l.errors[0].to_string()
    }

    #[test]
    fn root_owned_and_not_writable_by_others_is_read() {
        if !is_root() {
            return;
        }
        let (_t, f) = setup(0, 0o755, 0, 0o644);
        let l = load_as(&f, 0);
        assert!(l.is_ok(), "{:?}", l.errors);
        assert_eq!(l.config.npages_boost, 500);
        let (_t, f) = setup(0, 0o700, 0, 0o600);
        assert!(load_as(&f, 0).is_ok());
    }

    #[test]
    fn file_of_another_user_is_refused() {
        if !is_root() {
            return;
        }
        let (_t, f) = setup(0, 0o755, 1000, 0o644);
        let m = refused(&load_as(&f, 0));
        assert!(
            m.starts_with(&format!("{}: refusing", f.display()))
                && m.contains("configuration file (owner uid 1000, mode 0644)")
                && m.contains("owned by uid 1000, not by root")
                && m.contains("--insecure-config"),
            "{m}"
        );
    }

    #[test]
    fn file_writable_by_group_or_others_is_refused() {
        if !is_root() {
            return;
        }
        for (mode, who) in [
            (0o664, "by its group"),
            (0o646, "by others"),
            (0o666, "by its group and by others"),
        ] {
            let (_t, f) = setup(0, 0o755, 0, mode);
            let m = refused(&load_as(&f, 0));
            assert!(m.contains(&format!("mode {mode:04o}")), "{m}");
            assert!(m.contains(&format!("it is writable {who}")), "{m}");
        }
    }

    #[test]
    fn directory_of_another_user_or_writable_is_refused() {
        if !is_root() {
            return;
        }
        for (uid, mode, what) in [
            (1000, 0o755, "owned by uid 1000"),
            (0, 0o775, "writable by its group"),
            (0, 0o777, "writable by its group and by others"),
            (0, 0o1777, "writable by its group and by others"),
        ] {
            let (_t, f) = setup(uid, mode, 0, 0o644);
            let m = refused(&load_as(&f, 0));
            let dir = f.parent().unwrap();
            assert!(
                m.starts_with(&format!(
                    "{}: refusing to use this configuration directory",
                    dir.display()
                )),
                "{m}"
            );
            assert!(
                m.contains(what) && m.contains(&format!("mode {mode:04o}")),
                "{m}"
            );
        }
    }

    #[test]
    fn a_symlink_is_judged_by_what_it_points_to() {
        if !is_root() {
            return;
        }
        // A root-owned link in a safe directory to a file in a
        // world-writable one: whoever writes there steers the daemon.
        let (_t, target) = setup(0, 0o777, 0, 0o644);
        let safe = tempfile::tempdir().unwrap();
        let link = safe.path().join("ksmtuned.conf");
        symlink(&target, &link).unwrap();
        let m = refused(&load_as(&link, 0));
        assert!(
            m.contains("configuration directory") && m.contains("mode 0777"),
            "{m}"
        );
        // A link to another user's file.
        let (_t2, target) = setup(0, 0o755, 1000, 0o644);
        let link2 = safe.path().join("other.conf");
        symlink(&target, &link2).unwrap();
        let m = refused(&load_as(&link2, 0));
        assert!(m.contains("owner uid 1000"), "{m}");
    }

    #[test]
    fn an_unprivileged_daemon_may_read_its_own_files() {
        if !is_root() {
            return;
        }
        // Run as uid 1000 (a test tree): its own files and root's are fine,
        // a third user's are not.
        let (_t, f) = setup(1000, 0o755, 1000, 0o644);
        assert!(load_as(&f, 1000).is_ok());
        let (_t, f) = setup(0, 0o755, 0, 0o644);
        assert!(load_as(&f, 1000).is_ok());
        let (_t, f) = setup(0, 0o755, 2000, 0o644);
        let m = refused(&load_as(&f, 1000));
        assert!(
            m.contains("not by root or uid 1000 (who runs ksmtuned)"),
            "{m}"
        );
        // Root's daemon does not trust uid 1000's file.
        let (_t, f) = setup(1000, 0o755, 1000, 0o644);
        refused(&load_as(&f, 0));
    }

    #[test]
    fn insecure_config_reads_it_with_a_warning() {
        if !is_root() {
            return;
        }
        let (_t, f) = setup(0, 0o777, 1000, 0o666);
        let l = load(&Root::default(), Some(&f), Trust::Insecure);
        assert!(l.is_ok(), "{:?}", l.errors);
        assert_eq!(l.config.npages_boost, 500);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(
            l.warnings[0].contains("owned by uid 1000")
                && l.warnings[0].contains("read anyway because of --insecure-config"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn a_missing_default_file_is_not_checked() {
        let t = tempfile::tempdir().unwrap();
        let l = load(&Root::new(t.path()), None, Trust::Owner { euid: 0 });
        assert!(l.is_ok() && l.path.is_none(), "{:?}", l.errors);
    }
}

#[test]
fn trust_domains_and_their_errors() {
    let l =
        conf("KSM_TRUST_DOMAINS=cgroup:3\nKSM_CROSS_DOMAIN=warn\nKSM_DOMAIN_AUDIT_INTERVAL=120\n");
    assert!(
        l.is_ok() && l.warnings.is_empty(),
        "{:?} {:?}",
        l.errors,
        l.warnings
    );
    assert_eq!(l.config.trust_domains, TrustDomains::Cgroup { depth: 3 });
    assert_eq!(l.config.cross_domain, CrossDomain::Warn);
    assert_eq!(l.config.domain_audit_interval, 120);
    let l = conf("KSM_TRUST_DOMAINS=tenant\nKSM_CROSS_DOMAIN=deny\nKSM_DOMAIN_AUDIT_INTERVAL=5\n");
    let msgs: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(
        msgs[0].starts_with("/etc/ksmtuned.conf:1: KSM_TRUST_DOMAINS=\"tenant\""),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with("/etc/ksmtuned.conf:2: KSM_CROSS_DOMAIN")
            && msgs[1].contains("known: allow, warn, refuse"),
        "{msgs:?}"
    );
    let l = conf("KSM_TRUST_DOMAINS=user\nKSM_CROSS_DOMAIN=refuse\n");
    assert!(l.is_ok(), "{:?}", l.errors);
    assert_eq!(l.config.cross_domain, CrossDomain::Refuse);
    assert!(msgs[2].contains(":3: KSM_DOMAIN_AUDIT_INTERVAL") && msgs[2].contains("at least 60"));
    // A policy without domains does nothing: said so.
    let l = conf("KSM_CROSS_DOMAIN=warn\n");
    assert!(
        l.warnings[0].contains(":1: KSM_CROSS_DOMAIN has no effect"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn estimate_interval() {
    let c = conf("KSM_ESTIMATE_INTERVAL=3600\n");
    assert!(c.is_ok(), "{:?}", c.errors);
    assert_eq!(c.config.estimate_interval, 3600);
    assert_eq!(conf("").config.estimate_interval, 0, "off by default");
    let bad = conf("KSM_ESTIMATE_INTERVAL=-1\n");
    assert!(
        bad.errors[0]
            .to_string()
            .contains("KSM_ESTIMATE_INTERVAL=\"-1\": must be at least 0"),
        "{:?}",
        bad.errors
    );
}
