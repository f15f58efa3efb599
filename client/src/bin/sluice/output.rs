//! What every command's output shares: the `--output` format of the operator views,
//! tables of left-aligned columns (two spaces apart, "-" for what is unknown), JSON (pretty
//! for the one-shot views, one object per line for `top`), and writing to stdout, where a
//! reader that went away (`| head`) is a normal end.

use std::fmt::Write;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

/// How a view is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

/// A table of left-aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rows, each cell padded to its column's width, trailing blanks trimmed.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A value or "-".
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Broker ids, comma-separated ("-" for none).
pub fn ids(list: &[i32]) -> String {
    if list.is_empty() {
        return "-".to_string();
    }
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn yes(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// `value` pretty-printed as JSON, ending with a newline.
pub fn json_pretty<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

/// `value` as one line of JSON, ending with a newline.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

/// A reader that went away (`| head`) is a normal end, not an error.
pub fn quiet_on_broken_pipe(error: std::io::Error) -> anyhow::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error).context("writing to stdout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_blanks() {
        let mut table = Table::new(&["A", "LONGER", "C"]);
        table.row(vec![
            "wide cell".to_string(),
            "x".to_string(),
            String::new(),
        ]);
        assert_eq!(table.render(), "A          LONGER  C\nwide cell  x\n");
    }
}
