//! `--help` of every command of the real binary, at 100 columns.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"));
    cmd.args(args).arg("--help").env("COLUMNS", "100");
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
