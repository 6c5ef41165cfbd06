//! The runnable example scripts in docs/examples/ run end to end against
//! the real binary (server, import, shell) and print what the docs promise.

use std::process::Command;

#[test]
fn the_audience_example_prints_overlap_and_a_lift_report() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/audience.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("COHORTDB", env!("CARGO_BIN_EXE_cohortdb"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("imported 40 rows, rejected 0"), "{stdout}");
    // Three segments, the sample's sizes (checked by hand against profiles.csv).
    for line in [
        " readers      | profiles | interests HAS ANY ('i0002', 'i0003') | true         |       20",
        " sporty       | profiles | interests HAS 'i0001'                | false        |       23",
        " young_sporty | profiles | IN sporty AND age < 35               | false        |       10",
        // Venn: in all three.
        " true   | true    | true         |        4",
        // Pairs: sporty and readers share 11.
        " sporty  | readers      |         23 |         20 |   11 |",
        // The lift report leads with the segment's own interest.
        " i0001     |    23 |                   1 |         23 |      0.575 | 173.91304347826087",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}
