//! `--help` of every command of the real binary, at 100 columns.

use std::process::Command;

fn help(args: &[&str]) -> String {
    help_at(args, 100)
}

fn help_at(args: &[&str], columns: u16) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"));
    cmd.args(args)
        .arg("--help")
        .env("COLUMNS", columns.to_string());
    for (key, _) in std::env::vars() {
        if key.starts_with("EPHEMERAL_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{args:?} --help fails");
    String::from_utf8(out.stdout).unwrap()
}

/// Every subcommand (render's help is in render.rs).
const COMMANDS: &[&str] = &[
    "create",
    "list",
    "describe",
    "sets",
    "extend",
    "add-app",
    "set-app",
    "remove-app",
    "delete",
    "wait",
    "templates",
    "completion",
    "version",
];

#[test]
fn every_command_has_help() {
    for command in COMMANDS {
        let text = help(&[command]);
        assert!(
            text.contains(&format!("Usage: kubectl ephemeral {command}")),
            "{command}: usage reads `kubectl ephemeral ...`:\n{text}"
        );
        insta::assert_snapshot!(format!("help_{}", command.replace('-', "_")), text);
    }
}

/// The symlink commands `completion --help` shows must survive copy and
/// paste: each on a line of its own, not wrapped, even on an 80-column terminal.
#[test]
fn the_completion_symlink_commands_are_not_wrapped() {
    for columns in [80, 100] {
        let text = help_at(&["completion"], columns);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for command in [
            r#"cd "$(dirname "$(command -v kubectl-ephemeral)")""#,
            "ln -s kubectl-ephemeral kubectl_complete-ephemeral",
        ] {
            assert!(
                lines.contains(&command),
                "at {columns} columns, `{command}` is not a line of its own:\n{text}"
            );
        }
    }
}
