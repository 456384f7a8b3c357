//! Tables in the look of `kubectl get`: no borders, upper-case headers,
//! columns three spaces apart, no trailing spaces; optional colour.

use std::io::IsTerminal;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Padding, Style};

/// Whether to colour stdout: only on a terminal, and never with `NO_COLOR` set
/// (to anything but the empty string).
pub fn colour_wanted() -> bool {
    colour_allowed(std::io::stdout().is_terminal())
}

/// Whether to colour a stream that is (or is not) a terminal, given `NO_COLOR`.
pub fn colour_allowed(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours for the few cells that carry state.
#[derive(Clone, Copy, Debug)]
pub enum Paint {
    /// Good: ready.
    Green,
    /// Bad: not ready, expired.
    Red,
    /// In between.
    Yellow,
}

/// `text` in `paint` when `colour` is on.
pub fn paint(text: &str, paint: Paint, colour: bool) -> String {
    if !colour {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Green => 32,
        Paint::Red => 31,
        Paint::Yellow => 33,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Renders rows under `header` (left out with `headers == false`).
pub fn render(header: &[&str], rows: Vec<Vec<String>>, headers: bool) -> String {
    if rows.is_empty() && !headers {
        return String::new();
    }
    let mut builder = Builder::with_capacity(rows.len() + 1, header.len());
    if headers {
        builder.push_record(header.iter().copied());
    }
    for row in rows {
        builder.push_record(row);
    }
    let mut table = builder.build();
    table
        .with(Style::empty())
        .with(Padding::new(0, 3, 0, 0))
        .modify(Columns::last(), Padding::zero());
    let text = table.to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_like_kubectl_get() {
        let rows = vec![
            vec!["alice".into(), "True".into()],
            vec!["bob-long-name".into(), "-".into()],
        ];
        assert_eq!(
            render(&["NAME", "READY"], rows.clone(), true),
            "NAME            READY\nalice           True\nbob-long-name   -\n"
        );
        assert_eq!(
            render(&["NAME", "READY"], rows, false),
            "alice           True\nbob-long-name   -\n"
        );
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let rows = vec![
            vec![paint("True", Paint::Green, true), "x".into()],
            vec!["False".into(), "y".into()],
        ];
        let text = render(&["READY", "NEXT"], rows, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "READY   NEXT");
        assert_eq!(lines[1], "\x1b[32mTrue\x1b[0m    x");
        assert_eq!(lines[2], "False   y");
    }

    #[test]
    fn no_colour_means_plain_text() {
        assert_eq!(paint("True", Paint::Green, false), "True");
    }
}
