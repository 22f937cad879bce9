//! The packaging files name commands the binary really has: the container's entrypoint
//! and health check, and the systemd unit's ExecStartPre/ExecStart.

use std::net::TcpListener;
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
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/container/Containerfile"
    ))
    .unwrap();
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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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

#[test]
fn systemd_unit_commands_are_valid() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/systemd/tributary.service"
    ))
    .unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "LoadCredential=",
    ] {
        assert!(unit.contains(key), "unit lacks {key}");
    }
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
