//! The examples of docs/cohortql.md are executed: every ```sql block runs
//! (in order, against one database) and its result must equal the ```text
//! block that follows it, rendered as `column | column` lines and a row
//! count, or `TAG affected` for writes, or `ERROR: message`.

use cohortdb::query::Output;
use cohortdb::{Database, Durability, Options};

fn render(db: &Database, sql: &str) -> String {
    let mut out = Vec::new();
    match db.execute(sql) {
        Err(e) => out.push(format!("ERROR: {e}")),
        Ok(outputs) => {
            for o in outputs {
                match o {
                    Output::Done { tag, affected } => out.push(format!("{tag} {affected}")),
                    Output::Rows(rows) => {
                        let header: Vec<String> =
                            rows.columns.iter().map(|c| c.name.clone()).collect();
                        out.push(header.join(" | "));
                        let rows = rows.collect_all().expect("rows");
                        let n = rows.len();
                        for r in rows {
                            out.push(
                                r.iter()
                                    .map(|v| v.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" | "),
                            );
                        }
                        out.push(format!("({n} row{})", if n == 1 { "" } else { "s" }));
                    }
                }
            }
        }
    }
    out.join("\n")
}

/// Runs every example; returns the document with each result block as the
/// engine produces it, and the number of examples that had a result block.
fn run_examples(doc: &str) -> (String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        Options {
            durability: Durability::Off,
            background: false,
            ..Options::default()
        },
    )
    .unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut examples = 0;
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        if lines[i].trim() != "```sql" {
            i += 1;
            continue;
        }
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && lines[i].trim() != "```" {
            sql.push(lines[i]);
            out.push(lines[i].to_string());
            i += 1;
        }
        if i < lines.len() {
            out.push(lines[i].to_string());
            i += 1;
        }
        let result = render(&db, &sql.join("\n"));
        // Blank lines, then an optional ```text block that holds the result.
        let mut j = i;
        while j < lines.len() && lines[j].trim().is_empty() {
            j += 1;
        }
        if j < lines.len() && lines[j].trim() == "```text" {
            out.extend(lines[i..j].iter().map(|l| l.to_string()));
            out.push("```text".to_string());
            out.push(result);
            j += 1;
            while j < lines.len() && lines[j].trim() != "```" {
                j += 1;
            }
            i = j; // the closing fence is copied by the loop
            examples += 1;
        }
    }
    (out.join("\n") + "\n", examples)
}

#[test]
fn every_example_in_the_reference_gives_the_documented_result() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cohortql.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (actual, examples) = run_examples(&doc);
    if std::env::var("COHORT_BLESS_DOCS").is_ok() {
        std::fs::write(path, &actual).unwrap();
        return;
    }
    assert!(examples >= 20, "only {examples} examples have results");
    if actual != doc {
        let first = doc
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "docs/cohortql.md differs from what the engine returns at line {}:\n  doc:    {:?}\n  engine: {:?}\n(rerun with COHORT_BLESS_DOCS=1 after checking the change is right)",
            first + 1,
            doc.lines().nth(first).unwrap_or(""),
            actual.lines().nth(first).unwrap_or("")
        );
    }
}
