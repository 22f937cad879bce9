//! The packaging files name commands the binary really has: the container's entrypoint
//! and health check, and the systemd unit's ExecStartPre/ExecStart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tributary");

fn json_array_after(line: &str, key: &str) -> Vec<String> {
    let rest = &line[line.find(key).unwrap() + key.len()..];
    let arr = &rest[rest.find('[').unwrap()..=rest.rfind(']').unwrap()];
    serde_json::from_str(arr).unwrap()
}

#[test]
fn container_entrypoint_and_healthcheck_work_against_the_binary() {
    let file = packaging_file("container/Containerfile");
    let line = |k: &str| {
        file.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no {k}"))
            .to_string()
    };
    let entry = json_array_after(&line("ENTRYPOINT"), "ENTRYPOINT");
    let cmd = json_array_after(&line("CMD"), "CMD");
    let health = json_array_after(&line("HEALTHCHECK"), "CMD");
    assert!(
        line("USER").contains("tributary"),
        "runs as a non-root user"
    );
    assert_eq!(entry, ["/usr/local/bin/tributary"]);
    // the SMB connector starts its worker program from tributary's own folder
    let copy = line("COPY --from=build");
    assert!(
        copy.contains("/release/tributary ")
            && copy.contains("/release/tributary-smb-worker ")
            && copy.ends_with(" /usr/local/bin/"),
        "the image installs tributary and tributary-smb-worker side by side: {copy}"
    );
    assert_eq!(cmd[0], "run");

    // the container's paths, mapped to a temp folder
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let port = crate::common::free_port();
    let cfg = dir.path().join("tributary.yaml");
    std::fs::write(
        &cfg,
        format!("version: 1\nstate_dir: state\napi:\n  listen: 0.0.0.0:{port}\nconnectors:\n  - id: docs\n    kind: local\n    path: src\n"),
    )
    .unwrap();
    let map = |args: &[String]| -> Vec<String> {
        args.iter()
            .map(|a| {
                if a == "/etc/tributary/tributary.yaml" {
                    cfg.to_str().unwrap().to_string()
                } else {
                    a.clone()
                }
            })
            .collect()
    };
    let probe = || Command::new(BIN).args(&map(&health)[1..]).output().unwrap();
    assert!(!probe().status.success(), "unhealthy while nothing runs");
    let mut daemon = Command::new(BIN)
        .args(map(&cmd))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = probe();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health check never passed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn packaging_file(rel: &str) -> String {
    let path = format!("{}/../packaging/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn systemd_unit_commands_are_valid() {
    let unit = packaging_file("systemd/tributary.service");
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "User=tributary",
        "StateDirectory=tributary",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(key), "unit lacks {key}");
    }
    // systemd refuses to start a unit whose credential file is missing: the unit names
    // none, the drop-in example only in comments
    assert!(
        !unit.lines().any(|l| l.starts_with("LoadCredential")),
        "the unit names a credential file"
    );
    let dropin = packaging_file("systemd/credentials.conf");
    assert!(dropin.contains("[Service]") && dropin.contains("#LoadCredential="));
    assert!(!dropin.lines().any(|l| l.starts_with("LoadCredential")));
    let pre = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPre="))
        .unwrap();
    let start = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, "version: 1\nconnectors: []\n").unwrap();
    let args = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .skip(1)
            .map(|a| a.replace("/etc/tributary/tributary.yaml", cfg.to_str().unwrap()))
            .collect()
    };
    let out = Command::new(BIN).args(args(pre)).output().unwrap();
    assert!(
        out.status.success(),
        "ExecStartPre fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = Command::new(BIN)
        .args([args(start)[0].as_str(), "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "ExecStart names a real subcommand");
}

#[test]
fn unit_package_and_container_agree_on_the_user_and_the_state() {
    let sysusers = packaging_file("systemd/tributary.sysusers");
    let user = sysusers
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a user line");
    let fields: Vec<&str> = user.split_whitespace().collect();
    assert_eq!(fields[1], "tributary", "{user}");
    assert!(
        user.ends_with("/var/lib/tributary"),
        "its home is the state: {user}"
    );
    let unit = packaging_file("systemd/tributary.service");
    assert!(unit.contains("\nUser=tributary\n") && unit.contains("\nStateDirectory=tributary\n"));
    let container = packaging_file("container/Containerfile");
    assert!(container.contains("useradd --system") && container.contains(" tributary"));
    assert!(container.contains("VOLUME [\"/var/lib/tributary\"]"));
    let example = packaging_file("tributary.yaml");
    assert!(example.contains("\nstate_dir: /var/lib/tributary\n"));
    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    for asset in [
        "\"../packaging/tributary.yaml\", \"etc/tributary/tributary.yaml\"",
        "\"target/release/tributary-smb-worker\", \"usr/bin/\"",
        "unit-scripts = \"../packaging/systemd\"",
        "libsmbclient",
    ] {
        assert!(cargo.contains(asset), "the package metadata lacks {asset}");
    }
    // the maintainer scripts keep cargo-deb's insertion point
    for script in ["deb/postinst", "deb/postrm"] {
        assert!(
            packaging_file(script).contains("\n#DEBHELPER#\n"),
            "{script}"
        );
    }
}

/// The configuration the package installs as /etc/tributary/tributary.yaml, with its
/// absolute paths moved into `root`, and the secrets the package's postinst makes.
fn installed_example(root: &Path) -> std::path::PathBuf {
    let etc = root.join("etc");
    let state = root.join("state");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        etc.join("api-token"),
        "example-install-token-0123456789abcdef",
    )
    .unwrap();
    // the secrets key as the postinst makes it (the returned lines are the shipped
    // file's own)
    crate::common::secrets_key(&etc);
    let port = crate::common::free_port();
    let text = packaging_file("tributary.yaml")
        .replace("/etc/tributary/", &format!("{}/", etc.display()))
        .replace("/var/lib/tributary", state.to_str().unwrap())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let cfg = etc.join("tributary.yaml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `tributary check -c cfg` (offline).
fn check_offline(cfg: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "-c"])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn the_shipped_configuration_is_valid_and_starts_a_daemon_that_answers_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = installed_example(dir.path());
    let check = check_offline(&cfg);
    assert!(
        check.status.success(),
        "the shipped configuration fails its check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    let port: u16 = text
        .split("listen: 127.0.0.1:")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut daemon = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = || {
        Command::new(BIN)
            .args(["health", "--ready", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
            .status
            .success()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = |token: Option<&str>| {
        let mut args = vec![
            "-s".to_string(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
        ];
        if let Some(t) = token {
            args.push("-H".into());
            args.push(format!("Authorization: Bearer {t}"));
        }
        args.push(format!("http://127.0.0.1:{port}/api/v1/connectors"));
        let out = Command::new("curl").args(&args).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status(None), "401", "fails closed without a token");
    assert_eq!(
        status(Some("example-install-token-0123456789abcdef")),
        "200",
        "the install's token is the admin's"
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    // commented examples in the file are valid too: uncommenting the local folder
    // connector gives a configuration that passes the check
    let folder = dir.path().join("scans");
    std::fs::create_dir_all(&folder).unwrap();
    let mut uncommented = String::new();
    let mut in_local = false;
    for line in text.lines() {
        if line == "connectors: []" {
            uncommented.push_str("connectors:\n");
            continue;
        }
        if line.starts_with("#  - id: scans") {
            in_local = true;
        } else if in_local && !line.starts_with("#    ") {
            in_local = false;
        }
        if in_local {
            uncommented.push_str(&line[1..].replace("/srv/scans", folder.to_str().unwrap()));
        } else {
            uncommented.push_str(line);
        }
        uncommented.push('\n');
    }
    std::fs::write(&cfg, &uncommented).unwrap();
    let check = check_offline(&cfg);
    assert!(
        check.status.success(),
        "the example local connector: {}\n{uncommented}",
        String::from_utf8_lossy(&check.stderr)
    );
}
