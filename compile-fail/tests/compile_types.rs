//! Compile-fail tests: opening for another purpose or kind, implementing `Purpose` by hand and
//! cloning revealed plaintext do not compile.

#[test]
fn type_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
