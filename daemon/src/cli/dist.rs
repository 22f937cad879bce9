//! What a package ships beside the binaries, generated from the command line's own
//! definition: shell completions and man pages. The generated files are committed
//! under `packaging/` (the Debian package and installs from source take them from
//! there); a test fails when they no longer match the command line.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tributary", &mut out);
    out
}

/// One man page per visible command (`tributary.1`, `tributary-ctl-run.1`, …), as
/// (file name, roff): `clap_mangen::generate_to`'s walk, kept in memory so that the
/// test can compare the pages with the committed ones.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out);
        }
        let man = clap_mangen::Man::new(cmd).manual("Tributary Manual");
        let mut page = Vec::new();
        man.render(&mut page).expect("render into memory");
        out.push((man.get_filename(), page));
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out);
    out.sort();
    out
}

/// `tributary completions SHELL`: the script on stdout.
pub fn print_completion(shell: Shell) -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(&completion(shell))?;
    Ok(ExitCode::SUCCESS)
}

/// `tributary man --out DIR`.
pub fn man(out: &Path) -> anyhow::Result<ExitCode> {
    let n = write_man_pages(out)
        .map_err(|e| anyhow::anyhow!("write man pages into {}: {e}", out.display()))?;
    eprintln!("{n} man pages in {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes every man page into `dir` (created if missing), removing tributary's pages
/// of commands that no longer exist (never another program's).
pub fn write_man_pages(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ours = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            (n == "tributary.1" || n.starts_with("tributary-")) && n.ends_with(".1")
        });
        if ours {
            std::fs::remove_file(path)?;
        }
    }
    let pages = man_pages();
    for (name, page) in &pages {
        std::fs::write(dir.join(name), page)?;
    }
    Ok(pages.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    /// The file a completion script is committed and installed as.
    fn completion_file(shell: Shell) -> &'static str {
        match shell {
            Shell::Bash => "tributary.bash",
            Shell::Zsh => "_tributary",
            Shell::Fish => "tributary.fish",
            _ => unreachable!("not shipped"),
        }
    }

    fn packaging() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
    }

    const REGENERATE: &str = "regenerate with scripts/gen-packaging.sh";

    #[test]
    fn committed_completions_match_the_command_line() {
        for shell in SHELLS {
            let path = packaging().join("completions").join(completion_file(shell));
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
            assert!(
                committed == completion(shell),
                "{} is out of date; {REGENERATE}",
                path.display()
            );
        }
    }

    #[test]
    fn committed_man_pages_match_the_command_line() {
        let dir = packaging().join("man");
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        committed.sort();
        let pages = man_pages();
        let names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(committed, names, "the set of man pages; {REGENERATE}");
        for (name, page) in pages {
            assert!(
                std::fs::read(dir.join(&name)).unwrap() == page,
                "packaging/man/{name} is out of date; {REGENERATE}"
            );
        }
    }

    #[test]
    fn writing_the_pages_replaces_tributarys_own_and_leaves_others_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ls.1"), "another program's page").unwrap();
        std::fs::write(dir.path().join("tributary-gone.1"), "a removed command").unwrap();
        let n = write_man_pages(dir.path()).unwrap();
        assert_eq!(n, man_pages().len());
        assert!(
            dir.path().join("ls.1").exists(),
            "another program's page is kept"
        );
        assert!(!dir.path().join("tributary-gone.1").exists());
        assert!(dir.path().join("tributary-ctl-run.1").exists());
    }

    #[test]
    fn man_pages_cover_every_visible_command_with_its_examples() {
        let pages = man_pages();
        let page = |name: &str| {
            let (_, p) = pages
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no {name}"));
            String::from_utf8(p.clone()).unwrap()
        };
        assert!(page("tributary.1").contains("Ingests file shares"));
        let run = page("tributary-ctl-run.1");
        assert!(
            run.contains("tributary ctl \\-c tributary.yaml run scans"),
            "{run}"
        );
        // internal commands have none
        assert!(
            pages
                .iter()
                .all(|(n, _)| !n.contains("extract-worker") && n != "tributary-man.1")
        );
    }
}
