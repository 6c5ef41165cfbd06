use cohortdb::bench::audience::{Block, CSV_HEADER};
use cohortdb::bench::stream::block;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn render(block: &Block, rows: std::ops::Range<usize>) -> String {
    let mut out = format!("{CSV_HEADER}\n").into_bytes();
    for i in rows {
        block.profile(i).write_csv(&mut out);
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn generator_is_byte_identical_to_gen_profiles_py() {
    let b = block(2600, 42, 0).expect("generate");
    assert_eq!(render(&b, 0..2600), fixture("gen_profiles_s42_2600.csv"));
    let b = block(1000, 7, 0).expect("generate");
    assert_eq!(render(&b, 0..1000), fixture("gen_profiles_s7_1000.csv"));
    let b = block(1_048_726, 42, 1).expect("generate");
    assert_eq!(render(&b, 0..150), fixture("gen_profiles_s42_rows_1048576_to_1048725.csv"));
}
