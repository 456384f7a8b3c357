//! `kubectl-ephemeral`: the kubectl plugin for ephemeral test environments.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kubectl_ephemeral::cli::{Cli, Command, KubeArgs};
use kubectl_ephemeral::cmd::{self, Ctx, Notes};
use kubectl_ephemeral::error::Error;
use kubectl_ephemeral::warnings::Warnings;
use kubectl_ephemeral::{client, table, time::Clock};

/// Exit code after Ctrl-C, as shells report a SIGINT death.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    if let Some(words) = completion_request() {
        return complete(&words);
    }
    let cli = Cli::parse();
    match &cli.command {
        Command::Render(args) => return render(args),
        Command::Completion(args) => {
            return report(
                cmd::completion::script(args.shell, &mut std::io::stdout())
                    .map(|()| Notes::new())
                    .map_err(Error::from),
            );
        }
        Command::Version => {
            return report(
                cmd::version::run(&mut std::io::stdout())
                    .map(|()| Notes::new())
                    .map_err(Error::from),
            );
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return report(Err(Error::Usage(format!("cannot start: {e}")))),
    };
    runtime.block_on(async {
        tokio::select! {
            result = run(cli) => report(result),
            _ = tokio::signal::ctrl_c() => ExitCode::from(INTERRUPTED),
        }
    })
}

/// The words to complete when kubectl runs us as `kubectl_complete-ephemeral`
/// (or when called as `kubectl-ephemeral __complete ...`, as cobra plugins are).
fn completion_request() -> Option<Vec<String>> {
    let mut args = std::env::args_os();
    let argv0 = args.next()?;
    let name = std::path::Path::new(&argv0)
        .file_stem()?
        .to_string_lossy()
        .into_owned();
    let words: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    if name == cmd::completion::EXECUTABLE {
        return Some(words);
    }
    (words.first().map(String::as_str) == Some("__complete")).then(|| words[1..].to_vec())
}

fn complete(words: &[String]) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let mut out = std::io::stdout().lock();
    let result = match runtime {
        Ok(rt) => rt.block_on(cmd::completion::complete(words, &mut out)),
        // Still answer the protocol: no candidates, no files.
        Err(_) => writeln!(out, ":{}", cmd::completion::NO_FILE_COMP),
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn render(args: &kubectl_ephemeral::cli::RenderArgs) -> ExitCode {
    let result = kubectl_ephemeral::render::run(args, &mut std::io::stdout().lock());
    // Messages go to stderr; if nobody reads it any more there is nobody to tell.
    let mut stderr = std::io::stderr().lock();
    match result {
        Ok(warnings) => {
            for w in warnings {
                let _ = writeln!(stderr, "warning: {w}");
            }
            ExitCode::SUCCESS
        }
        // `render ... | head`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn report(result: Result<Notes, Error>) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    match result {
        Ok(notes) => {
            for note in notes {
                let _ = writeln!(stderr, "{note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn connect(kube: &KubeArgs) -> Result<(Ctx, String), Error> {
    let connection = client::connect(kube, Some(Warnings::stderr())).await?;
    let ctx = Ctx {
        client: connection.client,
        namespace: connection.namespace,
        clock: Clock::system(),
        colour: table::colour_wanted(),
    };
    Ok((ctx, connection.server))
}

/// Names the server in "unreachable" errors.
fn at_server(e: Error, server: &str) -> Error {
    match e {
        Error::Unreachable {
            server: None,
            cause,
        } => Error::Unreachable {
            server: Some(server.to_owned()),
            cause,
        },
        other => other,
    }
}

async fn run(cli: Cli) -> Result<Notes, Error> {
    cmd::preflight(&cli.command, &Clock::system())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    macro_rules! cluster {
        ($run:path, $args:expr) => {{
            let (ctx, server) = connect(&$args.kube).await?;
            let result = $run(&ctx, $args, &mut out).await;
            out.flush()?;
            result.map_err(|e| at_server(e, &server))
        }};
    }
    match &cli.command {
        Command::Create(args) => cluster!(cmd::create::run, args),
        Command::List(args) => cluster!(cmd::list::run, args),
        Command::Describe(args) => cluster!(cmd::describe::run, args),
        Command::Sets(args) => cluster!(cmd::sets::run, args),
        Command::Extend(args) => cluster!(cmd::extend::run, args),
        Command::AddApp(args) => cluster!(cmd::apps::add, args),
        Command::SetApp(args) => cluster!(cmd::apps::set, args),
        Command::RemoveApp(args) => cluster!(cmd::apps::remove, args),
        Command::Delete(args) => cluster!(cmd::delete::run, args),
        Command::Wait(args) => cluster!(cmd::wait::run, args),
        Command::Templates(args) => cluster!(cmd::templates::run, args),
        Command::Render(_) | Command::Version | Command::Completion(_) => {
            unreachable!("handled without a runtime")
        }
    }
}
