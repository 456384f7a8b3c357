//! `kubectl-ephemeral`: the kubectl plugin for ephemeral test environments.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use kubectl_ephemeral::cli::{Cli, Command, KubeArgs};
use kubectl_ephemeral::cmd::{self, Ctx, Notes};
use kubectl_ephemeral::error::Error;
use kubectl_ephemeral::{client, table, time::Clock};

/// Exit code after Ctrl-C, as shells report a SIGINT death.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Render(args) = &cli.command {
        return render(args);
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
    let connection = client::connect(kube).await?;
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    macro_rules! cluster {
        ($module:ident, $args:expr) => {{
            let (ctx, server) = connect(&$args.kube).await?;
            let result = cmd::$module::run(&ctx, $args, &mut out).await;
            out.flush()?;
            result.map_err(|e| at_server(e, &server))
        }};
    }
    match &cli.command {
        Command::Create(args) => cluster!(create, args),
        Command::List(args) => cluster!(list, args),
        Command::Render(_) => unreachable!("render runs without a runtime"),
    }
}
